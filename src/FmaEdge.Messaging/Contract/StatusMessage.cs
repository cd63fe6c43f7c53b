namespace FmaEdge.Messaging.Contract;

/// <summary>The node's availability, retained on <c>&lt;prefix&gt;/status</c> (QoS 1). "online" is published at
/// every connect; "offline" on a clean stop, and by the broker as the last will when the connection dies.
/// Immutable.</summary>
public sealed record StatusMessage
{
    public const string CurrentSchema = "fmaedge.status/1";
    public const string Online = "online";
    public const string Offline = "offline";

    public string Schema { get; init; } = CurrentSchema;

    /// <summary>"online" or "offline".</summary>
    public required string State { get; init; }

    public required string Node { get; init; }

    /// <summary>Daemon run id: a consumer pairs each online with the offline of the same session.</summary>
    public required string Session { get; init; }

    /// <summary>Daemon version.</summary>
    public required string Version { get; init; }

    /// <summary>The serving model when the message was built (the will carries the model at connect time).</summary>
    public ModelRef? Model { get; init; }

    /// <summary>The daemon's health verdict when online ("healthy", "degraded" ...), if it reports one.</summary>
    public string? Health { get; init; }

    /// <summary>When this session started, UTC.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>When the message was built, UTC.</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>Why the node went offline: "stopped" (clean), "connection_lost" (last will).</summary>
    public string? Reason { get; init; }
}
