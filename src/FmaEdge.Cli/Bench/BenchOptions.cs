namespace FmaEdge.Cli.Bench;

/// <summary>Settings of one <c>fma-edge bench</c> run. Mutable while the command line binds it; call
/// <see cref="Validate"/> before use and treat it as immutable afterwards.</summary>
public sealed class BenchOptions
{
    /// <summary>The model file benchmarked (a contract-valid ONNX file).</summary>
    public string Model { get; set; } = "";

    /// <summary>Folder of real images (any depth) copied, with distinct bytes, into the watched folder.</summary>
    public string Images { get; set; } = "";

    /// <summary>ONNX Runtime intra-op threads for the same-settings ceiling and the daemon (0 = the daemon's default: one
    /// per batch on the CPU provider, one per core the process may use on the others).</summary>
    public int Threads { get; set; }

    /// <summary>The one execution provider benchmarked, for the ceiling and the daemon: "cpu" (default), "cuda" or
    /// "tensorrt". The TensorRT and CUDA settings are the daemon's defaults (fp16 with LayerNorm in fp32, profile up to
    /// MaxBatch); a provider that cannot load fails the ceiling, which stops the run (nothing is measured on the CPU under its name).</summary>
    public string Provider { get; set; } = "cpu";

    /// <summary><see cref="Threads"/> as the daemon resolves it (without a <c>--set Inference:...</c> override).</summary>
    public int EffectiveThreads => Threads > 0 ? Threads : Provider == "cpu" ? 1 : Environment.ProcessorCount;

    /// <summary>Batches the daemon runs at once with <see cref="EffectiveThreads"/> (its default rule: cores / threads on
    /// the CPU provider, one on the others).</summary>
    public int EffectiveConcurrent => Provider == "cpu" ? Math.Max(1, Environment.ProcessorCount / EffectiveThreads) : 1;

    /// <summary>"png" or "jpeg": the pipeline runs on 2448x2048 (5-megapixel) images of that format made from the real
    /// images instead of the images themselves; null uses the images as they are.</summary>
    public string? Large { get; set; }

    /// <summary>Seconds per configuration of the best-ceiling search (threads x batch).</summary>
    public double SearchSeconds { get; set; } = 3;

    /// <summary>Daemon configuration overrides ("Section:Key" under FmaEdge, e.g. "Inference:OtherThreadsNice"), for
    /// measuring what one setting buys.</summary>
    public Dictionary<string, string> Overrides { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The daemon's Inference:MaxBatch; the ceiling runs at this batch.</summary>
    public int MaxBatch { get; set; } = 8;

    /// <summary>How long the bare ONNX Runtime loop runs (after warm-up).</summary>
    public double CeilingSeconds { get; set; } = 10;

    /// <summary>Images pushed through the pipeline for the throughput figure (all dropped at once: a backlog).</summary>
    public int Count { get; set; } = 300;

    /// <summary>Decode + preprocess repetitions per generated image size (0 skips that part).</summary>
    public int PreprocessRepeats { get; set; } = 30;

    /// <summary>Length of the steady stream during which a model is hot-swapped (0 skips that part).</summary>
    public double SwapSeconds { get; set; } = 20;

    /// <summary>Stream rate of the hot-swap run as a fraction of the measured pipeline throughput.</summary>
    public double SwapLoad { get; set; } = 0.5;

    /// <summary>An external broker "host:port"; null starts the daemon's embedded broker.</summary>
    public string? Broker { get; set; }

    /// <summary>Working folder (inbox, state, staged images); null makes and removes a temporary one.</summary>
    public string? WorkDir { get; set; }

    /// <summary>Write the report here as JSON.</summary>
    public string? Json { get; set; }

    /// <summary>Longest wait for the pipeline to deliver everything before the run counts as failed.</summary>
    public double TimeoutSeconds { get; set; } = 600;

    /// <summary>Every problem with these options, one sentence each (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (!File.Exists(Model))
        {
            e.Add($"model file '{Model}' does not exist");
        }

        if (!Directory.Exists(Images))
        {
            e.Add($"image folder '{Images}' does not exist");
        }

        if (!FmaEdge.Inference.ExecutionProviders.Known.Contains(Provider))
        {
            e.Add($"--provider '{Provider}' is not one of {string.Join(", ", FmaEdge.Inference.ExecutionProviders.Known)}");
        }

        if (Threads is < 0 or > 256)
        {
            e.Add($"--threads {Threads} is outside 0..256");
        }

        if (MaxBatch is < 1 or > 256)
        {
            e.Add($"--max-batch {MaxBatch} is outside 1..256");
        }

        if (Large is not null and not "png" and not "jpeg")
        {
            e.Add($"--large '{Large}' is not png or jpeg");
        }

        if (SearchSeconds is <= 0 or > 3600)
        {
            e.Add($"--search-seconds {SearchSeconds} is outside (0, 3600]");
        }

        foreach (var key in Overrides.Keys.Where(k => k.Contains("IntraOpThreads", StringComparison.OrdinalIgnoreCase) || k.Contains("MaxBatch", StringComparison.OrdinalIgnoreCase)))
        {
            e.Add($"--set {key}: use --threads / --max-batch, which the ceilings follow too");
        }

        if (CeilingSeconds is <= 0 or > 3600)
        {
            e.Add($"--ceiling-seconds {CeilingSeconds} is outside (0, 3600]");
        }

        if (Count is < 1 or > 1_000_000)
        {
            e.Add($"--count {Count} is outside 1..1000000");
        }

        if (PreprocessRepeats is < 0 or > 100_000)
        {
            e.Add($"--preprocess-repeats {PreprocessRepeats} is outside 0..100000");
        }

        if (SwapSeconds is < 0 or > 3600)
        {
            e.Add($"--swap-seconds {SwapSeconds} is outside 0..3600");
        }

        if (SwapLoad is <= 0 or > 1)
        {
            e.Add($"--swap-load {SwapLoad} is outside (0, 1]");
        }

        if (Broker is not null && ParseBroker(Broker) is null)
        {
            e.Add($"--broker '{Broker}' is not host:port");
        }

        if (TimeoutSeconds is <= 0 or > 86_400)
        {
            e.Add($"--timeout {TimeoutSeconds} is outside (0, 86400]");
        }

        return e;
    }

    /// <summary>"host:port" split, or null when malformed.</summary>
    public static (string Host, int Port)? ParseBroker(string value)
    {
        var i = value.LastIndexOf(':');
        return i > 0 && int.TryParse(value.AsSpan(i + 1), System.Globalization.CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? (value[..i], port)
            : null;
    }

    /// <summary>The shipped model, searched upward from the current folder and the executable's folder.</summary>
    public static string DefaultModel() =>
        FindUp(Path.Combine("models", "defects-convnext_femto-128.onnx")) ?? Path.Combine("models", "defects-convnext_femto-128.onnx");

    /// <summary>The real defect set's validation images ($FMAEDGE_DATASET, or shared/datasets/defects beside the
    /// repository), else the shipped demo images.</summary>
    public static string DefaultImages()
    {
        var env = Environment.GetEnvironmentVariable("FMAEDGE_DATASET");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(Path.Combine(env, "val")))
        {
            return Path.GetFullPath(Path.Combine(env, "val"));
        }

        var repo = FindUp("FmaEdge.sln") is { } sln ? Path.GetDirectoryName(sln)! : null;
        if (repo is not null)
        {
            var shared = Path.GetFullPath(Path.Combine(repo, "..", "shared", "datasets", "defects", "val"));
            if (Directory.Exists(shared))
            {
                return shared;
            }
        }

        return FindUp(Path.Combine("tools", "demo", "images")) ?? Path.Combine("tools", "demo", "images");
    }

    private static string? FindUp(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate) || Directory.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }
}
