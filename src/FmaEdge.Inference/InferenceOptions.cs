namespace FmaEdge.Inference;

/// <summary>How models are run: which execution providers to try in order, and their settings.
/// Immutable; validated by <see cref="Validate"/>.</summary>
public sealed record InferenceOptions
{
    /// <summary>Providers to try, best first: "tensorrt", "cuda", "cpu". CPU is always appended as the
    /// last resort so a model can always be served.</summary>
    public List<string> Providers { get; init; } = ["tensorrt", "cuda", "cpu"];

    /// <summary>Threads inside one operator (0 = ONNX Runtime's default, one per core).</summary>
    public int IntraOpThreads { get; init; }

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

    /// <summary>Folder for engine and timing caches; a sub-folder per model hash. Null disables caching.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Largest batch the engine profile is built for.</summary>
    public int MaxBatch { get; init; } = 8;
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

/// <summary>One attempt to enable a provider: whether it worked and, if not, why.</summary>
public sealed record ProviderAttempt(string Provider, bool Succeeded, string? Reason);
