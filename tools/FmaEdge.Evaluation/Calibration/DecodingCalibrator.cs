using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Metrics;

namespace FmaEdge.Evaluation.Calibration;

/// <summary>A calibrated decoding spec with the fits behind it and the held-out metrics before and after. Immutable.</summary>
public sealed record CalibrationResult(DecodingSpec Decoding, IReadOnlyList<TemperatureFit> Temperatures, ThresholdFit Thresholds,
    MetricsReport Before, MetricsReport After);

/// <summary>Calibrates a model's decoding from raw held-out outputs: one temperature per level (NLL), then
/// per-level coarse thresholds for a target precision at a stated confidence (see <see cref="ThresholdCalibrator"/>). Pure and
/// thread-safe; the trainer's ModelCalibrator wraps it with ONNX inference and file rewriting.</summary>
public static class DecodingCalibrator
{
    /// <summary>Fits temperatures and thresholds. <paramref name="rawOutputs"/> is [image][level][class] as the
    /// model emits it; <paramref name="trueLeaves"/> the labels. Keeps the other fields of <paramref name="current"/>.</summary>
    public static CalibrationResult Calibrate(CategoryTree tree, DecodingSpec current, bool outputsAreLogits,
        IReadOnlyList<float[][]> rawOutputs, IReadOnlyList<int> trueLeaves, double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision,
        double confidence = ThresholdCalibrator.DefaultConfidence)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(rawOutputs);
        ArgumentNullException.ThrowIfNull(trueLeaves);
        if (rawOutputs.Count != trueLeaves.Count)
        {
            throw new ArgumentException($"{rawOutputs.Count} outputs for {trueLeaves.Count} labels", nameof(trueLeaves));
        }

        if (rawOutputs.Count == 0)
        {
            throw new ArgumentException("calibration needs at least one labelled image", nameof(rawOutputs));
        }

        var before = HierarchicalMetrics.Compute(tree, Decode(new HierarchicalDecoder(tree, current, outputsAreLogits), rawOutputs, trueLeaves), current.Thresholds);
        var fits = new TemperatureFit[tree.Depth];
        for (var l = 0; l < tree.Depth; l++)
        {
            var level = l;
            fits[l] = TemperatureScaling.Fit(rawOutputs.Select(o => o[level]).ToList(),
                trueLeaves.Select(leaf => tree.AncestorOfLeaf(leaf, level)).ToList(), outputsAreLogits);
        }

        var tempered = current with
        {
            Temperatures = fits.Select(f => f.Temperature).ToList(),
            Thresholds = Enumerable.Repeat(0.0, tree.Depth).ToList(),
        };
        var records = Decode(new HierarchicalDecoder(tree, tempered, outputsAreLogits), rawOutputs, trueLeaves);
        var thresholds = ThresholdCalibrator.Fit(tree, records, targetPrecision, confidence);
        var calibrated = tempered with
        {
            Thresholds = thresholds.Thresholds.ToList(),
            TargetPrecision = targetPrecision,
            Confidence = confidence > 0 ? confidence : null,
        };
        var after = HierarchicalMetrics.Compute(tree, Decode(new HierarchicalDecoder(tree, calibrated, outputsAreLogits), rawOutputs, trueLeaves), calibrated.Thresholds);
        return new CalibrationResult(calibrated, fits, thresholds, before, after);
    }

    /// <summary>Decodes raw outputs ([image][level][class]) into evaluation records.</summary>
    public static List<EvaluationRecord> Decode(HierarchicalDecoder decoder, IReadOnlyList<float[][]> rawOutputs, IReadOnlyList<int> trueLeaves)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        return rawOutputs.Select((o, i) => new EvaluationRecord(trueLeaves[i], decoder.Decode(o))).ToList();
    }
}
