using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Metrics;

namespace FmaEdge.Evaluation.Calibration;

/// <summary>Per-level coarse-answer thresholds and what they achieve on the calibration set. Immutable.</summary>
/// <param name="Thresholds">[level] threshold in 0..1; 1.0 means "do not answer at this level".</param>
/// <param name="TargetPrecision">The precision the thresholds were chosen for.</param>
/// <param name="AcceptedByLevel">[level] calibration images answered at exactly that level.</param>
/// <param name="CorrectByLevel">[level] of those, the ones whose answer is right.</param>
/// <param name="ReachedTarget">[level] false only when a level could not reach the target and images tied at
/// confidence 1.0 are still answered there (threshold 1.0 cannot exclude them).</param>
public sealed record ThresholdFit(IReadOnlyList<double> Thresholds, double TargetPrecision, IReadOnlyList<int> AcceptedByLevel,
    IReadOnlyList<int> CorrectByLevel, IReadOnlyList<bool> ReachedTarget, int Images)
{
    /// <summary>Share of calibration images answered at some level (depth &gt;= 1).</summary>
    public double Coverage => Images == 0 ? 0 : (double)AcceptedByLevel.Sum() / Images;

    /// <summary>Precision over all answered calibration images (vacuously 1 when none).</summary>
    public double Precision => AcceptedByLevel.Sum() is var a && a > 0 ? (double)CorrectByLevel.Sum() / a : 1.0;

    /// <summary>[level] precision of the answers made at that level, or null when none.</summary>
    public IReadOnlyList<double?> PrecisionByLevel =>
        AcceptedByLevel.Select((a, l) => a == 0 ? (double?)null : (double)CorrectByLevel[l] / a).ToArray();
}

/// <summary>Chooses per-level confidence thresholds for the coarse ("climbing") answer so that the answers reach
/// a target precision on a calibration set, with the largest coverage at the finest levels. Stateless and
/// thread-safe.</summary>
/// <remarks>
/// <para>The decoding rule (HierarchicalDecoder.CoarseDepth): climb from the leaf toward the root and answer at
/// the first (deepest) level l whose path node confidence c_l (its marginal probability, which never falls
/// toward the root) satisfies c_l &gt;= t_l; no answer when no level does.</para>
/// <para>The fit, finest level first: let R be the calibration images not yet answered at a deeper level
/// (initially all). Images of R with c_l &gt;= t are the ones answered at level l. Among the candidate values
/// t = the distinct confidences seen in R, take the lowest t (the largest accepted set) whose accepted set has
/// precision (answer node is the true class's ancestor at l) &gt;= target; remove the accepted images from R and
/// move up a level. Because every level's accepted set meets the target, the answers overall meet it too.
/// Precision is not monotone in t, so all candidates are scanned rather than bisected.</para>
/// <para>A level where no candidate reaches the target gets t = 1.0: it never answers, except for images whose
/// confidence is exactly 1.0 (ties at the top, which no threshold in 0..1 can exclude);
/// <see cref="ThresholdFit.ReachedTarget"/> reports when such ties make a level miss the target.</para>
/// </remarks>
public static class ThresholdCalibrator
{
    /// <summary>The default target precision of coarse answers.</summary>
    public const double DefaultTargetPrecision = 0.99;

    /// <summary>Fits thresholds from per-image node confidences and correctness ([image][level]).</summary>
    public static ThresholdFit Fit(IReadOnlyList<double[]> nodeConfidence, IReadOnlyList<bool[]> nodeCorrect, int depth,
        double targetPrecision = DefaultTargetPrecision)
    {
        ArgumentNullException.ThrowIfNull(nodeConfidence);
        ArgumentNullException.ThrowIfNull(nodeCorrect);
        if (!(targetPrecision > 0 && targetPrecision <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(targetPrecision), targetPrecision, "the target precision must be in (0, 1]");
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

                if ((double)right / seen >= targetPrecision)
                {
                    best = value;
                }
            }

            thresholds[l] = Math.Clamp(best ?? 1.0, 0.0, 1.0);
            var taken = remaining.Where(i => nodeConfidence[i][level] >= thresholds[level]).ToList();
            accepted[l] = taken.Count;
            correct[l] = taken.Count(i => nodeCorrect[i][level]);
            reached[l] = taken.Count == 0 || (double)correct[l] / taken.Count >= targetPrecision;
            remaining = remaining.Where(i => nodeConfidence[i][level] < thresholds[level]).ToList();
        }

        return new ThresholdFit(thresholds, targetPrecision, accepted, correct, reached, nodeConfidence.Count);
    }

    /// <summary>Fits thresholds from decoded images (decoded with the final temperatures): the confidence of each
    /// path node and whether it is the true class's ancestor.</summary>
    public static ThresholdFit Fit(CategoryTree tree, IReadOnlyList<EvaluationRecord> records, double targetPrecision = DefaultTargetPrecision)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(records);
        var conf = records.Select(r => r.Prediction.Path.Select(n => (double)n.Confidence).ToArray()).ToList();
        var right = records.Select(r => r.Prediction.Path.Select(n => n.Index == tree.AncestorOfLeaf(r.TrueLeaf, n.Level)).ToArray()).ToList();
        return Fit(conf, right, tree.Depth, targetPrecision);
    }
}
