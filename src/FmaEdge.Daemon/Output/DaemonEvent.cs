using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>A notice or error for the floor. <see cref="Kind"/> is one of <see cref="EventKinds"/>.</summary>
public sealed record DaemonEvent(string Kind, string Severity, string Message, DateTimeOffset TimestampUtc,
    string? SourceId = null, string? Subject = null, string? Reason = null)
{
    /// <summary>Extra fields (counts, hashes, original message ids).</summary>
    public IReadOnlyDictionary<string, string>? Data { get; init; }
}
