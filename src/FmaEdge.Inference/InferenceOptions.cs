namespace FmaEdge.Inference;

/// <summary>How models are run: which execution providers to try in order, and their settings.
/// Immutable; validated by <see cref="Validate"/>.</summary>
public sealed record InferenceOptions
{
    /// <summary>Providers to try, best first: "tensorrt", "cuda", "cpu". CPU is always appended as the
    /// last resort so a model can always be served.</summary>
    public List<string> Providers { get; init; } = ["tensorrt", "cuda", "cpu"];

    /// <summary>Threads inside one operator (0 = one per core this process may use, see <see cref="EffectiveIntraOpThreads"/>).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>The intra-op threads sessions get: <see cref="IntraOpThreads"/>, or for 0 <see cref="Environment.ProcessorCount"/>,
    /// which on Linux counts the cores in the process's CPU affinity (taskset, systemd CPUAffinity=) and its cgroup CPU
    /// limit. ONNX Runtime's own default counts physical cores: 1 on a 2-vCPU VM, leaving half of it idle.</summary>
    public int EffectiveIntraOpThreads => IntraOpThreads > 0 ? IntraOpThreads : Environment.ProcessorCount;

    /// <summary>Threads across operators (0 = default; only used by parallel execution).</summary>
    public int InterOpThreads { get; init; }

    /// <summary>Let idle intra-op threads spin-wait for work (ONNX Runtime's default). Off by default: the daemon's
    /// other stages need those cycles.</summary>
    public bool AllowSpinning { get; init; }

    public TensorRtOptions TensorRt { get; init; } = new();
    public CudaOptions Cuda { get; init; } = new();

    /// <summary>Every problem with these options, one sentence each (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        foreach (var p in Providers.Where(p => !ExecutionProviders.Known.Contains(p)))
        {
            errors.Add($"unknown execution provider '{p}' (known: {string.Join(", ", ExecutionProviders.Known)})");
        }

        if (IntraOpThreads is < 0 or > 256)
        {
            errors.Add($"intra_op_threads {IntraOpThreads} is outside 0..256");
        }

        if (InterOpThreads is < 0 or > 256)
        {
            errors.Add($"inter_op_threads {InterOpThreads} is outside 0..256");
        }

        if (TensorRt.MaxWorkspaceBytes < 16L * 1024 * 1024)
        {
            errors.Add("tensorrt.max_workspace_bytes must be at least 16 MiB");
        }

        if (TensorRt.DeviceId < 0 || Cuda.DeviceId < 0)
        {
            errors.Add("device ids must be >= 0");
        }

        if (TensorRt.MaxBatch < 1 || TensorRt.OptBatch < 1 || TensorRt.OptBatch > TensorRt.MaxBatch)
        {
            errors.Add($"tensorrt batch profile needs 1 <= opt_batch ({TensorRt.OptBatch}) <= max_batch ({TensorRt.MaxBatch})");
        }

        if (TensorRt.BuilderOptimizationLevel is < 0 or > 5)
        {
            errors.Add($"tensorrt.builder_optimization_level {TensorRt.BuilderOptimizationLevel} is outside 0..5");
        }

        if (TensorRt.DlaCore is < -1 or > 7)
        {
            errors.Add($"tensorrt.dla_core {TensorRt.DlaCore} is outside -1..7");
        }

        return errors;
    }
}

/// <summary>TensorRT provider settings (Jetson Orin). Engines take minutes to build on first load, so the
/// engine and timing caches live on persistent storage, keyed by model hash.</summary>
public sealed record TensorRtOptions
{
    public int DeviceId { get; init; }

    /// <summary>Build fp16 engines (about twice as fast on Orin).</summary>
    public bool Fp16 { get; init; } = true;

    /// <summary>Keep LayerNorm in fp32 inside fp16 engines (ConvNeXt loses accuracy otherwise).</summary>
    public bool LayerNormFp32Fallback { get; init; } = true;

    /// <summary>Workspace cap; memory is shared with the CPU on Jetson.</summary>
    public long MaxWorkspaceBytes { get; init; } = 1L << 30;

    /// <summary>Folder for engine and timing caches; a sub-folder per model hash. Null disables both caches.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Keep built engines in <see cref="CacheDir"/> (a restart then loads instead of rebuilding).</summary>
    public bool EngineCache { get; init; } = true;

    /// <summary>Keep layer timings in <see cref="CacheDir"/> (a rebuild, e.g. after a TensorRT upgrade, is faster).</summary>
    public bool TimingCache { get; init; } = true;

    /// <summary>Largest batch the engine profile is built for.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>The batch the engine is tuned for (1..<see cref="MaxBatch"/>).</summary>
    public int OptBatch { get; init; } = 1;

    /// <summary>TensorRT builder optimisation level 0..5 (higher: slower build, maybe faster engine).</summary>
    public int BuilderOptimizationLevel { get; init; } = 3;

    /// <summary>Deep-learning accelerator core to use (Orin has 0 and 1), or -1 for the GPU only.</summary>
    public int DlaCore { get; init; } = -1;
}

/// <summary>CUDA provider settings.</summary>
public sealed record CudaOptions
{
    public int DeviceId { get; init; }

    /// <summary>Cap on the CUDA memory arena in bytes (0 = no cap).</summary>
    public long MemoryLimitBytes { get; init; }
}

/// <summary>Provider names as used in configuration and status.</summary>
public static class ExecutionProviders
{
    public const string TensorRt = "tensorrt";
    public const string Cuda = "cuda";
    public const string Cpu = "cpu";
    public static readonly IReadOnlyList<string> Known = [TensorRt, Cuda, Cpu];
}

/// <summary>One attempt to enable a provider: whether it worked, if not ONNX Runtime's whole reason, and the provider
/// options that were passed (empty for CPU).</summary>
public sealed record ProviderAttempt(string Provider, bool Succeeded, string? Reason)
{
    /// <summary>The options given to ONNX Runtime for this provider, by ONNX Runtime's own key names.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();
}
