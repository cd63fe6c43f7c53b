using System.Globalization;
using System.Text;
using System.Text.Json;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Evaluation.Metrics;
using FmaEdge.Training.Evaluation;

namespace FmaEdge.Training.Calibration;

/// <summary>One calibration method's results over the repeated splits. Immutable.</summary>
/// <param name="Confidence">0 for the point estimate (the method before the guarantee), else the stated confidence.</param>
/// <param name="Splits">Splits run.</param>
/// <param name="BelowTarget">Splits whose test precision (all answers) fell below the target.</param>
/// <param name="BelowTargetByDepth">[d] splits whose depth-(d+1) answers on the test part fell below the target
/// (splits with no such answers do not count).</param>
/// <param name="MeanCoverage">Mean share of test images with any answer.</param>
/// <param name="MeanCoverageByLevel">[l] mean share of test images answered at depth &gt;= l+1.</param>
/// <param name="MeanPrecision">Mean test precision of all answers.</param>
/// <param name="WorstPrecision">Lowest test precision over the splits.</param>
public sealed record MethodOutcome(double Confidence, int Splits, int BelowTarget, IReadOnlyList<int> BelowTargetByDepth, double MeanCoverage,
    IReadOnlyList<double> MeanCoverageByLevel, double MeanPrecision, double WorstPrecision)
{
    public string Method => ThresholdCalibrator.MethodName(Confidence);

    /// <summary>Share of splits whose test precision fell below the target.</summary>
    public double MissRate => Splits == 0 ? 0 : (double)BelowTarget / Splits;
}

/// <summary>The outcome of <see cref="CalibrationExperiment.Run"/>. Immutable.</summary>
public sealed record ExperimentResult(int Images, int Splits, int Seed, double CalibrationFraction, double TargetPrecision, IReadOnlyList<MethodOutcome> Methods);

/// <summary>Checks a calibration method empirically: the labelled images are split at random (stratified by
/// leaf) many times into a calibration part and a test part; on each split temperatures and thresholds are fitted
/// on the calibration part and the coarse answers scored on the test part. Counts how often test precision falls
/// below the target, for the point estimate and for the guaranteed method. The model runs once; its outputs are
/// reused. Stateless and thread-safe.</summary>
public static class CalibrationExperiment
{
    /// <summary>Runs the experiment on evaluated outputs (one row per image, [level][class]).</summary>
    public static ExperimentResult Run(ValidatedModel model, IReadOnlyList<LabeledImage> images, IReadOnlyList<float[][]> outputs, int splits,
        int seed, double calibrationFraction, double targetPrecision, double confidence)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(outputs);
        if (images.Count != outputs.Count || images.Count < 4)
        {
            throw new ArgumentException($"need one output row per image and at least 4 images, got {outputs.Count} rows for {images.Count} images");
        }

        if (!(confidence > 0 && confidence < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "compare against a confidence in (0, 1)");
        }

        var tree = model.Tree;
        var logits = EvaluationResult.OutputsAreLogits(model);
        var index = images.Select((im, i) => (im.Path, i)).ToDictionary(x => x.Path, x => x.i, StringComparer.Ordinal);
        var all = new LabeledDataset(tree, images, "");
        double[] confidences = [0, confidence];
        var acc = confidences.Select(_ => new Accumulator(tree.Depth)).ToArray();
        for (var s = 0; s < splits; s++)
        {
            // SplitStratified's second part gets the fraction: that is the calibration part here.
            var (test, calib) = all.SplitStratified(calibrationFraction, seed + s);
            var calibRows = calib.Images.Select(i => index[i.Path]).ToList();
            var testRows = test.Images.Select(i => index[i.Path]).ToList();
            for (var m = 0; m < confidences.Length; m++)
            {
                var fit = DecodingCalibrator.Calibrate(tree, model.Manifest.Decoding, logits, calibRows.Select(r => outputs[r]).ToList(),
                    calibRows.Select(r => images[r].Leaf).ToList(), targetPrecision, confidences[m]);
                var records = DecodingCalibrator.Decode(new HierarchicalDecoder(tree, fit.Decoding, logits), testRows.Select(r => outputs[r]).ToList(),
                    testRows.Select(r => images[r].Leaf).ToList());
                acc[m].Add(HierarchicalMetrics.Compute(tree, records, fit.Decoding.Thresholds).Coarse, testRows.Count, targetPrecision);
            }
        }

        return new ExperimentResult(images.Count, splits, seed, calibrationFraction, targetPrecision,
            confidences.Select((c, m) => acc[m].Outcome(c, splits)).ToList());
    }

    /// <summary>The result as a Markdown table, one row per method.</summary>
    public static string ToMarkdown(ExperimentResult r, IReadOnlyList<string> levelNames)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(levelNames);
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"| method | test precision < {r.TargetPrecision:P0} (all answers) | ");
        sb.Append(string.Join(" | ", levelNames.Select((n, d) => $"depth-{d + 1} answers < target")));
        sb.Append(" | mean precision | worst precision | coverage | ");
        sb.Append(string.Join(" | ", levelNames.Select((n, d) => $"answered to depth >= {d + 1}")));
        sb.AppendLine(" |");
        sb.Append("|---|---|").Append(string.Concat(levelNames.Select(_ => "---|"))).Append("---|---|---|").AppendLine(string.Concat(levelNames.Select(_ => "---|")));
        foreach (var m in r.Methods)
        {
            var name = m.Confidence > 0 ? $"{m.Method}, confidence {m.Confidence:0.###}" : $"{m.Method} (before)";
            sb.Append(inv, $"| {name} | {m.BelowTarget}/{m.Splits} ({m.MissRate:P1}) | ");
            sb.Append(string.Join(" | ", m.BelowTargetByDepth.Select(b => string.Create(inv, $"{b}/{m.Splits}"))));
            sb.Append(inv, $" | {m.MeanPrecision:P2} | {m.WorstPrecision:P2} | {m.MeanCoverage:P1} | ");
            sb.Append(string.Join(" | ", m.MeanCoverageByLevel.Select(c => c.ToString("P1", inv))));
            sb.AppendLine(" |");
        }

        return sb.ToString();
    }

    /// <summary>Writes evaluated outputs to a JSON cache keyed by the model's hash.</summary>
    public static void WriteCache(string path, ValidatedModel model, IReadOnlyList<LabeledImage> images, IReadOnlyList<float[][]> outputs)
    {
        ArgumentNullException.ThrowIfNull(model);
        var cache = new OutputCache(model.Sha256, images.Select((im, i) => new CachedRow(im.Path, im.Leaf, outputs[i])).ToList());
        AtomicFile.WriteAllBytes(Path.GetFullPath(path), JsonSerializer.SerializeToUtf8Bytes(cache));
    }

    /// <summary>Reads a cache written by <see cref="WriteCache"/> for this model, or null when absent or for another model.</summary>
    public static (IReadOnlyList<LabeledImage> Images, IReadOnlyList<float[][]> Outputs)? ReadCache(string path, ValidatedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!File.Exists(path))
        {
            return null;
        }

        var cache = JsonSerializer.Deserialize<OutputCache>(File.ReadAllBytes(path));
        if (cache is null || cache.ModelSha256 != model.Sha256)
        {
            return null;
        }

        return (cache.Rows.Select(r => new LabeledImage(r.Path, r.Leaf)).ToList(), cache.Rows.Select(r => r.Outputs).ToList());
    }

    private sealed record CachedRow(string Path, int Leaf, float[][] Outputs);

    private sealed record OutputCache(string ModelSha256, List<CachedRow> Rows);

    private sealed class Accumulator(int depth)
    {
        private int _below;
        private readonly int[] _belowByDepth = new int[depth];
        private double _coverage;
        private readonly double[] _coverageByLevel = new double[depth];
        private double _precision;
        private double _worst = 1.0;

        public void Add(CoarseMetrics coarse, int images, double target)
        {
            _below += coarse.Precision < target ? 1 : 0;
            for (var d = 0; d < depth; d++)
            {
                _belowByDepth[d] += coarse.PrecisionByDepth[d] is { } p && p < target ? 1 : 0;
                _coverageByLevel[d] += coarse.CoverageByLevel[d];
            }

            _coverage += (double)coarse.Answered / images;
            _precision += coarse.Precision;
            _worst = Math.Min(_worst, coarse.Precision);
        }

        public MethodOutcome Outcome(double confidence, int splits) => new(confidence, splits, _below, _belowByDepth.ToArray(),
            _coverage / Math.Max(1, splits), _coverageByLevel.Select(c => c / Math.Max(1, splits)).ToArray(), _precision / Math.Max(1, splits), _worst);
    }
}
