using System.Text.Json.Nodes;

namespace FmaEdge.Messaging.Contract;

/// <summary>An error or notice, as published on <c>&lt;prefix&gt;/events</c> (QoS 1, not retained). Events go
/// through the durable outbox like results, so they are ordered with them and survive outages. Immutable.</summary>
public sealed record EventMessage
{
    public const string CurrentSchema = "fmaedge.event/1";

    public string Schema { get; init; } = CurrentSchema;

    /// <summary>Unique id (UUID v7). Filled by the publisher when left empty.</summary>
    public string MessageId { get; init; } = "";

    /// <summary>Daemon run id. Filled by the publisher when left empty.</summary>
    public string Session { get; init; } = "";

    /// <summary>Node name. Filled by the publisher when left empty.</summary>
    public string Node { get; init; } = "";

    /// <summary>One of <see cref="EventKinds"/> (free text is allowed for new kinds; keep it snake_case).</summary>
    public required string Kind { get; init; }

    /// <summary>One of <see cref="EventSeverity"/>: info, warning, error.</summary>
    public string Severity { get; init; } = EventSeverity.Info;

    /// <summary>The source id the event is about, if any.</summary>
    public string? Source { get; init; }

    /// <summary>One human-readable sentence.</summary>
    public required string Message { get; init; }

    /// <summary>Machine-readable details (file, reason, counts ...).</summary>
    public JsonObject? Details { get; init; }

    /// <summary>When it happened, UTC. Filled by the publisher when left default.</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>When the message was sent to the broker (set by the publisher).</summary>
    public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>True when it waited in the outbox across a broker outage or a restart.</summary>
    public bool Historical { get; init; }
}

/// <summary>Event kinds the daemon and the publisher emit: the one list, spelled as docs/mqtt.md spells them.</summary>
public static class EventKinds
{
    public const string BadImage = "bad_image";
    public const string Duplicate = "duplicate";
    public const string FrameDrops = "frame_drops";

    /// <summary>A camera capture blocked in native code past its deadline was given up and its thread left behind.</summary>
    public const string CaptureAbandoned = "capture_abandoned";

    /// <summary>A finished file could not be moved to done/ or failed/ (disk full, permissions); its result is stored.</summary>
    public const string MoveFailed = "move_failed";

    /// <summary>Files move to done/ and failed/ again after a <see cref="MoveFailed"/>.</summary>
    public const string MoveRecovered = "move_recovered";

    /// <summary>A result could not be stored (disk full, database error); the file is kept and retried.</summary>
    public const string StoreFailed = "store_failed";
    public const string Started = "started";
    public const string Stopping = "stopping";
    public const string ModelRejected = "model_rejected";
    public const string ModelSwapped = "model_swapped";
    public const string ModelLoading = "model_loading";
    public const string SourceDown = "source_down";
    public const string SourceUp = "source_up";
    public const string DiskLow = "disk_low";

    /// <summary>The outbox hit its cap and dropped the oldest results (details: dropped, depth, bytes, limits).</summary>
    public const string OutboxFull = "outbox_full";

    /// <summary>The outbox file was unreadable at start; it was moved aside and a fresh one created (details: path).</summary>
    public const string OutboxRecovered = "outbox_recovered";

    /// <summary>The publisher (re)connected (details: outage_seconds, backlog).</summary>
    public const string BrokerConnected = "broker_connected";

    /// <summary>The publisher lost the broker (details: reason). Delivered after the reconnect, as historical.</summary>
    public const string BrokerDisconnected = "broker_disconnected";

    /// <summary>The broker refused a message for good (e.g. not authorised); it was dropped (details: topic, reason).</summary>
    public const string BrokerRejected = "broker_rejected";
}

/// <summary>Event severities.</summary>
public static class EventSeverity
{
    public const string Info = "info";
    public const string Warning = "warning";
    public const string Error = "error";
}
