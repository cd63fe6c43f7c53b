namespace FmaEdge.Cli.Bench;

/// <summary>Everything one <c>fma-edge bench</c> run measured, serialised as the JSON report. Immutable.</summary>
public sealed record BenchReport
{
    /// <summary>The exact command line that produced this report.</summary>
    public required string Command { get; init; }
    public required DateTimeOffset StartedUtc { get; init; }
    public required double DurationSeconds { get; init; }
    public required MachineInfo Machine { get; init; }
    public required BenchModelInfo Model { get; init; }
    public required BenchSettings Settings { get; init; }
    /// <summary>The daemon's own threads, runs at once and MaxBatch in the bare loop, on the idle machine at the start.</summary>
    public required CeilingResult Ceiling { get; init; }

    /// <summary>The same loop right before and right after the timed pipeline run (the daemon warm and idle); the ratio
    /// uses the mean of these two.</summary>
    public required CeilingResult CeilingBefore { get; init; }
    public required CeilingResult CeilingAfter { get; init; }

    /// <summary>The bare loop at batch 1, for scale (the pipeline batches whatever is queued, up to MaxBatch).</summary>
    public required CeilingResult CeilingBatch1 { get; init; }

    /// <summary>Every bare configuration tried (threads 1..cores the process may use x batch 1, 2, 4, ..., MaxBatch).</summary>
    public required IReadOnlyList<CeilingResult> CeilingSearch { get; init; }

    /// <summary>The fastest of <see cref="CeilingSearch"/>: it picks the configuration.</summary>
    public required CeilingResult BestCeiling { get; init; }

    /// <summary>That configuration right before and right after the timed pipeline run; the ratio to the best uses the
    /// mean of these two.</summary>
    public required CeilingResult BestCeilingBefore { get; init; }
    public required CeilingResult BestCeilingAfter { get; init; }
    public required PipelineResult Pipeline { get; init; }
    public required IReadOnlyList<PreprocessResult> Preprocess { get; init; }

    /// <summary>Null when the hot-swap part was skipped.</summary>
    public SwapResult? Swap { get; init; }
}

/// <summary>Where the figures were taken. Load averages are from /proc/loadavg before and after the run.</summary>
public sealed record MachineInfo(int Cores, string Cpu, string Os, string Runtime, string OnnxRuntime, string LoadBefore, string LoadAfter);

/// <summary>The model benchmarked.</summary>
public sealed record BenchModelInfo(string File, string Id, string Architecture, string Sha256, int Width, int Height);

/// <summary>The settings both the same-settings ceiling and the daemon ran with (<paramref name="IntraOpThreads"/> as
/// resolved: 0 in the configuration means one per core the process may use), and the daemon's configuration overrides.</summary>
/// <param name="Large">"png" or "jpeg" when the pipeline ran on 2448x2048 images made from <paramref name="ImagesFrom"/>; else null.</param>
public sealed record BenchSettings(string Provider, int IntraOpThreads, int MaxBatch, int Images, string Broker, string ImagesFrom, string? Large,
    IReadOnlyDictionary<string, string> Overrides);

/// <summary>The bare ONNX Runtime loop: pre-made input tensors, no decoding.</summary>
/// <param name="Threads">Intra-op threads.</param>
/// <param name="Cores">Average cores busy during the timed runs; <paramref name="CpuMsPerImage"/> is CPU time per image.</param>
public sealed record CeilingResult(int Threads, int Batch, int Runs, double Seconds, double ImagesPerSecond, StageStats BatchMs, double Cores, double CpuMsPerImage,
    int Concurrent = 1);

/// <summary>Folder -> pipeline -> MQTT throughput and per-stage latency.</summary>
/// <param name="Seconds">From the first file renamed into the watched folder to the last result received from the broker.</param>
/// <param name="Ratio">Images per second over the mean of the same-settings ceiling (the daemon's threads, MaxBatch)
/// right before and right after the timed run.</param>
/// <param name="RatioToBest">Images per second over the mean of the best bare configuration right before and right after the timed run.</param>
/// <param name="Backlog">Per-stage latency while the whole batch of files waited (queue wait dominates by design).</param>
/// <param name="Steady">Per-stage latency of a steady stream below capacity (the hot-swap run's images dropped before the swap); null when skipped.</param>
/// <param name="CpuMsPerImage">CPU time of the whole process (daemon, embedded broker, subscriber) per image in the backlog run.</param>
/// <param name="Cpu">Where that CPU time went, by thread name.</param>
public sealed record PipelineResult(int Images, int Received, double Seconds, double ImagesPerSecond, double Ratio, double RatioToBest, double MeanBatch,
    IReadOnlyDictionary<string, StageStats> Backlog, IReadOnlyDictionary<string, StageStats>? Steady, double CpuMsPerImage, CpuUse Cpu, WarmUp WarmUp);

/// <summary>What ran before the timed backlog.</summary>
/// <param name="Images">Warm-up images pushed through the whole pipeline.</param>
/// <param name="Rounds">Rounds of warm-up images (each waited for, then the JIT given time to go quiet).</param>
/// <param name="Seconds">From the first warm-up drop until the last round ended.</param>
/// <param name="JitSettled">The last round compiled for under 25 ms (false: the round limit was reached first).</param>
/// <param name="JitMsDuringRun">Time the JIT spent compiling during the timed backlog (near 0 when fully warm).</param>
public sealed record WarmUp(int Images, int Rounds, double Seconds, bool JitSettled, double JitMsDuringRun);

/// <summary>Decode and preprocess cost of one generated image kind, single-threaded.</summary>
public sealed record PreprocessResult(string Name, int Width, int Height, string Format, long Bytes, int Repeats,
    StageStats DecodeMs, StageStats PreprocessMs, StageStats TotalMs);

/// <summary>A model hot-swapped under a steady stream.</summary>
/// <param name="StreamRate">Images per second dropped into the folder.</param>
/// <param name="SwapAfterSeconds">When the new model file was renamed into the models folder, from the stream's start.</param>
/// <param name="FirstNewModelSeconds">From the drop of the model file to the first result from the new model.</param>
/// <param name="BaselineGapMs">Gaps between consecutive results before the swap (the stream's own rhythm).</param>
/// <param name="StallMs">The longest gap between consecutive results from the model drop until 2 s after the first new-model result.</param>
/// <param name="Affected">Images whose end-to-end latency in that window exceeded the pre-swap p99.</param>
/// <param name="Lost">Images dropped without a result (must be 0).</param>
public sealed record SwapResult(int Images, double StreamRate, double SwapAfterSeconds, double FirstNewModelSeconds,
    StageStats BaselineGapMs, double StallMs, int Affected, double AffectedMaxLatencyMs, double BaselineP99LatencyMs,
    int OldModelResults, int NewModelResults, int Lost);

/// <summary>Percentiles of a set of samples in milliseconds (or the unit its name says).</summary>
public sealed record StageStats(int Samples, double Mean, double P50, double P99, double Max)
{
    /// <summary>Summarises <paramref name="values"/> (zeros when empty); p-th value by nearest rank.</summary>
    public static StageStats Of(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        if (v.Length == 0)
        {
            return new StageStats(0, 0, 0, 0, 0);
        }

        double At(double q) => v[Math.Clamp((int)Math.Ceiling(q * v.Length) - 1, 0, v.Length - 1)];
        return new StageStats(v.Length, v.Average(), At(0.50), At(0.99), v[^1]);
    }
}
