using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Metrics;
using MathNet.Numerics.Distributions;

namespace FmaEdge.Evaluation.Calibration;

/// <summary>Per-level coarse-answer thresholds and what they achieve on the calibration set. Immutable.</summary>
/// <param name="Thresholds">[level] threshold in 0..1, or <see cref="DecodingSpec.NeverAnswer"/> for a level that does not answer.</param>
/// <param name="TargetPrecision">The precision the thresholds were chosen for.</param>
/// <param name="Confidence">The confidence of the guarantee (see <see cref="ThresholdCalibrator"/>); 0 for the
/// point estimate, which promises nothing beyond the calibration images.</param>
/// <param name="AcceptedByLevel">[level] calibration images answered at exactly that level.</param>
/// <param name="CorrectByLevel">[level] of those, the ones whose answer is right.</param>
/// <param name="ReachedTarget">[level] whether that level's answers on the calibration images reach the target
/// (true for a level with no answers). Always true for a fit of <see cref="ThresholdCalibrator"/>; false can only
/// come from thresholds chosen elsewhere.</param>
public sealed record ThresholdFit(IReadOnlyList<double> Thresholds, double TargetPrecision, double Confidence, IReadOnlyList<int> AcceptedByLevel,
    IReadOnlyList<int> CorrectByLevel, IReadOnlyList<bool> ReachedTarget, int Images)
{
    /// <summary>Share of calibration images answered at some level (depth &gt;= 1).</summary>
    public double Coverage => Images == 0 ? 0 : (double)AcceptedByLevel.Sum() / Images;

    /// <summary>Precision over all answered calibration images (vacuously 1 when none).</summary>
    public double Precision => AcceptedByLevel.Sum() is var a && a > 0 ? (double)CorrectByLevel.Sum() / a : 1.0;

    /// <summary>[level] precision of the answers made at that level, or null when none.</summary>
    public IReadOnlyList<double?> PrecisionByLevel =>
        AcceptedByLevel.Select((a, l) => a == 0 ? (double?)null : (double)CorrectByLevel[l] / a).ToArray();

    /// <summary>[level] the lower confidence bound on that level's precision (Clopper-Pearson at confidence
    /// 1 - (1 - <see cref="Confidence"/>) / levels), or null for the point estimate or a level with no answers.</summary>
    public IReadOnlyList<double?> PrecisionLowerBoundByLevel =>
        AcceptedByLevel.Select((a, l) => Confidence == 0 || a == 0
            ? (double?)null
            : 1 - ClopperPearson.Upper(a - CorrectByLevel[l], a, ThresholdCalibrator.LevelDelta(Confidence, AcceptedByLevel.Count))).ToArray();

    /// <summary>"clopper-pearson-fixed-sequence" or "point-estimate".</summary>
    public string Method => ThresholdCalibrator.MethodName(Confidence);
}

/// <summary>Chooses per-level confidence thresholds for the coarse ("climbing") answer so that the answers at each
/// level reach a target precision on new images, with a stated confidence, with the largest coverage at the finest
/// levels. Stateless and thread-safe.</summary>
/// <remarks>
/// <para>The decoding rule (HierarchicalDecoder.CoarseDepth): climb from the leaf toward the root and answer at
/// the first (deepest) level l whose path node confidence c_l satisfies c_l &gt;= t_l; no answer when no level does.</para>
/// <para>The fit, finest level first: let R be the calibration images not yet answered at a deeper level
/// (initially all). Images of R with c_l &gt;= t are the ones answered at level l. The candidates t are the distinct
/// confidences seen in R, scanned from the highest down (a fixed sequence, learn-then-test style). With confidence
/// 1 - delta > 0, a candidate is certified when the exact Clopper-Pearson upper bound on the error rate of its
/// accepted set, at delta / levels, is at most 1 - target; the scan starts at the first candidate with enough
/// accepted images for any outcome to be certified (chosen from the confidences alone, not the labels) and stops
/// at the first candidate that is not certified; t_l is the last certified one. Bonferroni over the levels makes
/// every level's precision &gt;= target hold together with probability &gt;= 1 - delta, for new images
/// exchangeable with the calibration images. With confidence 0 (the point estimate), t_l is the lowest candidate
/// whose accepted set merely reaches the target on the calibration images; precision is not monotone in t, so
/// all candidates are scanned.</para>
/// <para>A level with no certified candidate gets <see cref="DecodingSpec.NeverAnswer"/> (above 1): it never answers.
/// A threshold of 1 would not do: float32 confidences that round to exactly 1.0 pass it (a model whose top level is
/// always right on the calibration images fits a temperature near 0 there, and most of its confidences are 1.0).</para>
/// </remarks>
public static class ThresholdCalibrator
{
    /// <summary>The default target precision of coarse answers.</summary>
    public const double DefaultTargetPrecision = 0.99;

    /// <summary>The default confidence that every level's precision reaches the target on new images.</summary>
    public const double DefaultConfidence = 0.9;

    /// <summary>The per-level error allowance of a confidence (Bonferroni over the levels).</summary>
    public static double LevelDelta(double confidence, int depth) => (1 - confidence) / depth;

    /// <summary>The method's name as stored in reports and model metadata.</summary>
    public static string MethodName(double confidence) => confidence > 0 ? "clopper-pearson-fixed-sequence" : "point-estimate";

    /// <summary>Fits thresholds from per-image node confidences and correctness ([image][level]).</summary>
    public static ThresholdFit Fit(IReadOnlyList<double[]> nodeConfidence, IReadOnlyList<bool[]> nodeCorrect, int depth,
        double targetPrecision = DefaultTargetPrecision, double confidence = DefaultConfidence)
    {
        ArgumentNullException.ThrowIfNull(nodeConfidence);
        ArgumentNullException.ThrowIfNull(nodeCorrect);
        if (!(targetPrecision > 0 && targetPrecision <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(targetPrecision), targetPrecision, "the target precision must be in (0, 1]");
        }

        if (!(confidence >= 0 && confidence < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "the confidence must be in [0, 1) (0 = point estimate, no guarantee)");
        }

        if (depth < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(depth), depth, "the tree needs at least one level");
        }

        if (nodeConfidence.Count != nodeCorrect.Count)
        {
            throw new ArgumentException($"{nodeConfidence.Count} confidence rows for {nodeCorrect.Count} correctness rows", nameof(nodeCorrect));
        }

        for (var i = 0; i < nodeConfidence.Count; i++)
        {
            if (nodeConfidence[i].Length != depth || nodeCorrect[i].Length != depth)
            {
                throw new ArgumentException($"image {i} does not have {depth} levels", nameof(nodeConfidence));
            }
        }

        var maxError = 1 - targetPrecision;
        var delta = confidence > 0 ? LevelDelta(confidence, depth) : 0;
        var minAccepted = confidence > 0 ? ClopperPearson.MinTrials(maxError, delta) : 1;
        var thresholds = new double[depth];
        var accepted = new int[depth];
        var correct = new int[depth];
        var reached = new bool[depth];
        var remaining = Enumerable.Range(0, nodeConfidence.Count).ToList();
        for (var l = depth - 1; l >= 0; l--)
        {
            var level = l;
            var order = remaining.OrderByDescending(i => nodeConfidence[i][level]).ToList();
            double? best = null;
            int seen = 0, right = 0;
            for (var k = 0; k < order.Count;)
            {
                // Images tied at one confidence are accepted or refused together.
                var value = nodeConfidence[order[k]][level];
                while (k < order.Count && nodeConfidence[order[k]][level] == value)
                {
                    seen++;
                    right += nodeCorrect[order[k]][level] ? 1 : 0;
                    k++;
                }

                if (confidence == 0)
                {
                    best = (double)right / seen >= targetPrecision ? value : best;
                }
                else if (seen >= minAccepted)
                {
                    if (!Certified(seen - right, seen, maxError, delta))
                    {
                        break;
                    }

                    best = value;
                }
            }

            thresholds[l] = best is { } t ? Math.Clamp(t, 0.0, 1.0) : DecodingSpec.NeverAnswer;
            var taken = remaining.Where(i => nodeConfidence[i][level] >= thresholds[level]).ToList();
            accepted[l] = taken.Count;
            correct[l] = taken.Count(i => nodeCorrect[i][level]);
            reached[l] = taken.Count == 0 || (double)correct[l] / taken.Count >= targetPrecision;
            remaining = remaining.Where(i => nodeConfidence[i][level] < thresholds[level]).ToList();
        }

        return new ThresholdFit(thresholds, targetPrecision, confidence, accepted, correct, reached, nodeConfidence.Count);
    }

    /// <summary>True when <paramref name="errors"/> in <paramref name="accepted"/> certify an error rate of at most
    /// <paramref name="maxError"/>: P(Bin(accepted, maxError) &lt;= errors) &lt;= delta, which is the same as the
    /// Clopper-Pearson upper bound at 1 - delta being at most maxError (one CDF instead of an inverse).</summary>
    public static bool Certified(int errors, int accepted, double maxError, double delta) =>
        maxError > 0 && accepted > 0 && Binomial.CDF(maxError, accepted, errors) <= delta;

    /// <summary>Fits thresholds from decoded images (decoded with the final temperatures): the confidence of each
    /// path node and whether it is the true class's ancestor.</summary>
    public static ThresholdFit Fit(CategoryTree tree, IReadOnlyList<EvaluationRecord> records, double targetPrecision = DefaultTargetPrecision,
        double confidence = DefaultConfidence)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(records);
        var conf = records.Select(r => r.Prediction.Path.Select(n => (double)n.Confidence).ToArray()).ToList();
        var right = records.Select(r => r.Prediction.Path.Select(n => n.Index == tree.AncestorOfLeaf(r.TrueLeaf, n.Level)).ToArray()).ToList();
        return Fit(conf, right, tree.Depth, targetPrecision, confidence);
    }
}
