namespace FmaEdge.Daemon.Output;

/// <summary>The retained status fact: online/offline with version, session and the serving model.</summary>
public sealed record NodeStatus(string Node, bool Online, string Version, string Session, DateTimeOffset SinceUtc,
    string? ModelId, string? ModelSha256, string Health);
