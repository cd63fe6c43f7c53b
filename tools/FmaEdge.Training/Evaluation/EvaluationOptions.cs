using FmaEdge.Core.Contract;
using FmaEdge.Inference;

namespace FmaEdge.Training.Evaluation;

/// <summary>How <see cref="ModelEvaluator"/> runs a model over a dataset. Immutable; checked by <see cref="Validate"/>.</summary>
public sealed record EvaluationOptions
{
    /// <summary>Images per ONNX Runtime call.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Execution providers etc.; CPU only by default so evaluation is reproducible on any machine.</summary>
    public InferenceOptions Inference { get; init; } = new() { Providers = [ExecutionProviders.Cpu] };

    /// <summary>Decode with this spec instead of the model's own (e.g. to score a candidate calibration).</summary>
    public DecodingSpec? Decoding { get; init; }

    /// <summary>Threads decoding and preprocessing images (0 = one per core).</summary>
    public int PreprocessThreads { get; init; }

    /// <summary>Called after every batch with (images done, images total).</summary>
    public IProgress<(int Done, int Total)>? Progress { get; init; }

    /// <summary>Every problem with these options, one sentence each (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (BatchSize is < 1 or > 4096)
        {
            errors.Add($"batch size {BatchSize} is outside 1..4096");
        }

        if (PreprocessThreads is < 0 or > 256)
        {
            errors.Add($"preprocess threads {PreprocessThreads} is outside 0..256");
        }

        errors.AddRange(Inference.Validate());
        return errors;
    }
}
