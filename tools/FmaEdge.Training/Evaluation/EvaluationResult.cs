using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Evaluation.Metrics;

namespace FmaEdge.Training.Evaluation;

/// <summary>An image that could not be evaluated, with the decoder's reason code ("unreadable", "truncated", ...).</summary>
public sealed record EvaluationSkip(string Path, string Reason, string Message);

/// <summary>Where evaluation time went. Seconds are wall-clock; decode/preprocess overlaps nothing else.</summary>
public sealed record EvaluationTimings(double TotalSeconds, double DecodeSeconds, double InferenceSeconds, int Batches)
{
    /// <summary>Evaluated images per wall-clock second.</summary>
    public double ImagesPerSecond { get; init; }

    /// <summary>Mean inference time per image (ms), excluding decoding.</summary>
    public double InferenceMsPerImage { get; init; }
}

/// <summary>One model evaluated on one labelled dataset: the metrics, every image's raw outputs (what calibration
/// fits on) and what was skipped. Immutable.</summary>
public sealed record EvaluationResult
{
    /// <summary>The validated model file.</summary>
    public required ValidatedModel Model { get; init; }

    /// <summary>The provider ONNX Runtime used ("cpu", "cuda", "tensorrt"); "none" when built from outputs.</summary>
    public string ExecutionProvider { get; init; } = "none";

    /// <summary>The dataset folder or manifest evaluated.</summary>
    public string DataPath { get; init; } = "";

    /// <summary>The decoding spec the records were decoded with.</summary>
    public required DecodingSpec Decoding { get; init; }

    /// <summary>The evaluated images, in order (skipped ones excluded).</summary>
    public required IReadOnlyList<LabeledImage> Images { get; init; }

    /// <summary>Raw model outputs per evaluated image, [image][level][class] (logits or probabilities as the
    /// manifest says).</summary>
    public required IReadOnlyList<float[][]> RawOutputs { get; init; }

    /// <summary>Decoded images with their true leaves.</summary>
    public required IReadOnlyList<EvaluationRecord> Records { get; init; }

    /// <summary>Every metric.</summary>
    public required MetricsReport Metrics { get; init; }

    /// <summary>Images listed but not evaluated, with the reason.</summary>
    public IReadOnlyList<EvaluationSkip> Skipped { get; init; } = [];

    /// <summary>Where the time went; null when built from outputs.</summary>
    public EvaluationTimings? Timings { get; init; }

    /// <summary>True leaf index per evaluated image.</summary>
    public IReadOnlyList<int> Labels => Images.Select(i => i.Leaf).ToArray();

    /// <summary>Builds a result from raw outputs already computed (no inference): decodes and scores them.</summary>
    public static EvaluationResult FromOutputs(ValidatedModel model, IReadOnlyList<LabeledImage> images, IReadOnlyList<float[][]> rawOutputs,
        DecodingSpec? decoding = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(rawOutputs);
        if (images.Count != rawOutputs.Count)
        {
            throw new ArgumentException($"{images.Count} images for {rawOutputs.Count} outputs", nameof(rawOutputs));
        }

        decoding ??= model.Manifest.Decoding;
        var decoder = new HierarchicalDecoder(model.Tree, decoding, OutputsAreLogits(model));
        var records = DecodingCalibrator.Decode(decoder, rawOutputs, images.Select(i => i.Leaf).ToArray());
        return new EvaluationResult
        {
            Model = model,
            Decoding = decoding,
            Images = images,
            RawOutputs = rawOutputs,
            Records = records,
            Metrics = HierarchicalMetrics.Compute(model.Tree, records, decoder.Thresholds),
        };
    }

    /// <summary>The same images and outputs decoded with another spec (no inference is repeated).</summary>
    public EvaluationResult Redecode(DecodingSpec decoding)
    {
        var again = FromOutputs(Model, Images, RawOutputs, decoding);
        return this with { Decoding = decoding, Records = again.Records, Metrics = again.Metrics };
    }

    /// <summary>True when every model output is logits (softmax applied by the decoder).</summary>
    public static bool OutputsAreLogits(ValidatedModel model) =>
        model.Manifest.Outputs.All(o => o.Kind == OutputKinds.Logits);
}
