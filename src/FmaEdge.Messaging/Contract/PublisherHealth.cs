namespace FmaEdge.Messaging.Contract;

/// <summary>Connection state of the publisher.</summary>
public enum ConnectionState
{
    /// <summary>Not started, or stopped.</summary>
    Stopped,

    /// <summary>A connection attempt is running.</summary>
    Connecting,

    /// <summary>Connected; the outbox is being drained.</summary>
    Connected,

    /// <summary>Not connected; waiting for the next attempt (results keep going to the outbox).</summary>
    Disconnected,
}

/// <summary>A snapshot of the publisher for status and stats: connection, counters and outbox. Immutable.</summary>
/// <param name="Published">Messages sent (results and events, excluding status/model/stats).</param>
/// <param name="Acked">Messages the broker acknowledged (PUBACK) and that were removed from the outbox.</param>
/// <param name="Failed">Publish attempts that failed (connection lost, timeout); the message stayed queued.</param>
/// <param name="Replayed">Acknowledged messages that were historical (waited across an outage or restart).</param>
/// <param name="Rejected">Messages the broker refused for good and that were dropped.</param>
/// <param name="DroppedByCap">Results dropped because the outbox hit its cap.</param>
public sealed record PublisherHealth(
    ConnectionState State,
    string Broker,
    DateTimeOffset? ConnectedSince,
    DateTimeOffset? DisconnectedSince,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    long Connects,
    long Published,
    long Acked,
    long Failed,
    long Replayed,
    long Rejected,
    long DroppedByCap,
    long StatsDropped,
    OutboxStats Outbox);

/// <summary>Outbox depth: pending messages, their payload bytes and the age of the oldest, plus the caps.</summary>
public sealed record OutboxStats(long Depth, long Bytes, double? OldestAgeSeconds, long MaxMessages, long MaxBytes, long DroppedByCap);
