using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Sources;

namespace FmaEdge.Daemon.Status;

/// <summary>What <c>fma-edge status</c> shows, as served on the status socket. Immutable; serialised as camelCase JSON.</summary>
public sealed record StatusSnapshot
{
    /// <summary>"healthy", "degraded" or "starting".</summary>
    public required string Health { get; init; }

    /// <summary>Why the node is not healthy, one line each.</summary>
    public required IReadOnlyList<string> Problems { get; init; }
    public required string Node { get; init; }
    public required string Version { get; init; }
    public required string Session { get; init; }
    public required int ProcessId { get; init; }
    public required DateTimeOffset StartedUtc { get; init; }
    public required double UptimeSeconds { get; init; }
    public required ModelStatus? Model { get; init; }
    public required IReadOnlyList<SourceState> Sources { get; init; }
    public required QueueStatus Queues { get; init; }
    public required CountStatus Counts { get; init; }
    public required IReadOnlyDictionary<string, LatencySummary> Latency { get; init; }
    public required SinkState Output { get; init; }
    public required IReadOnlyList<DiskStatus> Disks { get; init; }

    /// <summary>The process's memory, descriptors and threads (null from a daemon older than this field).</summary>
    public ProcessStatus? Process { get; init; }
}

/// <summary>The serving model and the hot-swap state.</summary>
public sealed record ModelStatus(string Id, string Version, string Sha256, string Path, string Provider, IReadOnlyList<string> ProviderNotes,
    DateTimeOffset ActiveSinceUtc, long Swaps, string? Loading, ModelRejectionStatus? LastRejection)
{
    /// <summary>Model files refused since start (each set aside with its reason when it was a hot-swap drop).</summary>
    public long Rejected { get; init; }

    /// <summary>Every execution provider tried for the serving model, in order: loaded or not, ONNX Runtime's whole
    /// reason when not, and the options it was given (TensorRT precision, caches, profile, workspace, device).</summary>
    public IReadOnlyList<FmaEdge.Inference.ProviderAttempt> ProviderAttempts { get; init; } = [];
}

/// <summary>The last refused model file.</summary>
public sealed record ModelRejectionStatus(string Path, IReadOnlyList<string> Reasons, DateTimeOffset AtUtc)
{
    /// <summary>Where the refused file was moved (<c>rejected/</c> beside the models), or null when it stayed in place.</summary>
    public string? SetAsideTo { get; init; }
}

/// <summary>Depth and capacity of each pipeline queue.</summary>
public sealed record QueueStatus(int Input, int InputCapacity, int Infer, int InferCapacity, int Publish, int PublishCapacity);

/// <summary>Counts since start: published, failed (set aside), duplicates, skipped (already done), dropped (camera overload), in flight.</summary>
public sealed record CountStatus(long Processed, long Failed, long Duplicates, long Skipped, long Dropped, long InFlight, double MeanBatch)
{
    /// <summary><see cref="Failed"/> split by reason code (the code in the bad-image event and the reason file).</summary>
    public IReadOnlyDictionary<string, long> FailedByReason { get; init; } = new Dictionary<string, long>();
}

/// <summary>Free space of a folder the daemon writes to.</summary>
public sealed record DiskStatus(string Path, long FreeMiB, long TotalMiB, bool BelowFloor);
