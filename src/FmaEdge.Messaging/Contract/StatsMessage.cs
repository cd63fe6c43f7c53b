using System.Text.Json.Nodes;

namespace FmaEdge.Messaging.Contract;

/// <summary>Periodic counters on <c>&lt;prefix&gt;/stats</c> (QoS 0, not retained, not stored while the broker is
/// down: stale stats are worthless). The daemon fills the pipeline part; the publisher fills <see cref="Mqtt"/>.
/// Immutable.</summary>
public sealed record StatsMessage
{
    public const string CurrentSchema = "fmaedge.stats/1";

    public string Schema { get; init; } = CurrentSchema;

    public string Node { get; init; } = "";

    public string Session { get; init; } = "";

    public DateTimeOffset Timestamp { get; init; }

    public double UptimeSeconds { get; init; }

    /// <summary>Health verdict: "healthy", "degraded" ...</summary>
    public string? Health { get; init; }

    public long ImagesProcessed { get; init; }

    public long ImagesFailed { get; init; }

    public long FramesDropped { get; init; }

    /// <summary>Per-source counters by source id.</summary>
    public IReadOnlyDictionary<string, SourceStats>? Sources { get; init; }

    /// <summary>Latency percentiles per stage in ms, e.g. {"infer": {"p50": 4.1, "p99": 9.8}}.</summary>
    public IReadOnlyDictionary<string, LatencyPercentiles>? LatencyMs { get; init; }

    /// <summary>Publisher counters and outbox depth; filled by the publisher when null.</summary>
    public PublisherHealth? Mqtt { get; init; }

    /// <summary>The Sparkplug B connection, when enabled.</summary>
    public Sparkplug.SparkplugHealth? Sparkplug { get; init; }

    /// <summary>Anything else the daemon wants to report.</summary>
    public JsonObject? Extra { get; init; }
}

/// <summary>One source's counters.</summary>
public sealed record SourceStats(string State, long Processed, long Failed, long Dropped, double? Fps = null,
    double? LastFrameAgeSeconds = null);

/// <summary>Latency percentiles in milliseconds.</summary>
public sealed record LatencyPercentiles(double P50, double P99);
