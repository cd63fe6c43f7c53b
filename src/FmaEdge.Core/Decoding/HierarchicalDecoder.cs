using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Core.Decoding;

/// <summary>Turns per-level model outputs into per-level answers, the path-consistent answer and the coarse
/// answer. Shared by trainer evaluation and the daemon so both decode identically. Immutable after
/// construction and thread-safe.</summary>
/// <remarks>
/// The path distribution: P(leaf) is proportional to the product over levels of p_l(ancestor_l(leaf))
/// ("product" scoring, for hierarchical heads), or to p_leaf(leaf) alone ("leaf" scoring, for flat heads,
/// whose upper levels are sums of leaves anyway). A node's confidence is the sum of P over its leaves,
/// which is consistent by construction and never decreases toward the root, so climbing from the leaf
/// until a node passes its level's threshold is well defined.
/// </remarks>
public sealed class HierarchicalDecoder
{
    private readonly CategoryTree _tree;
    private readonly double[] _temperatures;
    private readonly double[] _thresholds;
    private readonly bool _logits;
    private readonly bool _leafScoring;
    private readonly int _topK;

    /// <summary>Creates a decoder. Temperatures default to 1 and thresholds to 0 (always a full answer).</summary>
    public HierarchicalDecoder(CategoryTree tree, DecodingSpec? spec = null, bool outputsAreLogits = true)
    {
        spec ??= new DecodingSpec();
        // Validated here as well as in the model contract: the trainer builds decoders from its own calibration.
        if (spec.Temperatures.Any(t => !(t > 0) || !double.IsFinite(t)))
        {
            throw new ArgumentOutOfRangeException(nameof(spec), "temperatures must be positive finite numbers");
        }

        if (spec.Thresholds.Any(double.IsNaN))
        {
            throw new ArgumentOutOfRangeException(nameof(spec), "thresholds must be numbers");
        }

        if (spec.PathScoring is not (PathScorings.Product or PathScorings.Leaf))
        {
            throw new ArgumentOutOfRangeException(nameof(spec), spec.PathScoring, "path scoring must be product or leaf");
        }

        _tree = tree;
        _temperatures = Pad(spec.Temperatures, tree.Depth, 1.0);
        _thresholds = Pad(spec.Thresholds, tree.Depth, 0.0);
        _logits = outputsAreLogits;
        _leafScoring = spec.PathScoring == PathScorings.Leaf;
        _topK = Math.Max(1, spec.TopK);
    }

    /// <summary>Creates the decoder a validated model file asks for.</summary>
    public static HierarchicalDecoder ForModel(ValidatedModel model) =>
        new(model.Tree, model.Manifest.Decoding, model.Manifest.Outputs.All(o => o.Kind == OutputKinds.Logits));

    /// <summary>The tree this decoder answers in.</summary>
    public CategoryTree Tree => _tree;

    /// <summary>Per-level thresholds in use.</summary>
    public IReadOnlyList<double> Thresholds => _thresholds;

    /// <summary>Decodes one image from its raw per-level outputs ([level][class]).</summary>
    public HierarchicalPrediction Decode(IReadOnlyList<float[]> levelOutputs)
    {
        if (levelOutputs.Count != _tree.Depth)
        {
            throw new ArgumentException($"expected {_tree.Depth} level outputs, got {levelOutputs.Count}", nameof(levelOutputs));
        }

        var probs = new float[_tree.Depth][];
        for (var l = 0; l < _tree.Depth; l++)
        {
            if (levelOutputs[l].Length != _tree.Levels[l].Count)
            {
                throw new ArgumentException($"level {l} output has {levelOutputs[l].Length} values for {_tree.Levels[l].Count} classes", nameof(levelOutputs));
            }

            probs[l] = ToProbabilities(levelOutputs[l], _temperatures[l], _logits);
            // NaN (or +infinity, which turns into NaN) would otherwise decode to leaf 0 with NaN confidences.
            if (Array.Exists(probs[l], float.IsNaN))
            {
                throw new ArgumentException($"level {l} output holds NaN or infinite values", nameof(levelOutputs));
            }
        }

        return DecodeProbabilities(probs);
    }

    /// <summary>Decodes image <paramref name="n"/> of a batch whose outputs are flattened [N*classes] per level.</summary>
    public HierarchicalPrediction DecodeBatchItem(IReadOnlyList<float[]> batchOutputs, int n)
    {
        var one = new float[_tree.Depth][];
        for (var l = 0; l < _tree.Depth; l++)
        {
            var c = _tree.Levels[l].Count;
            one[l] = batchOutputs[l].AsSpan(n * c, c).ToArray();
        }

        return Decode(one);
    }

    /// <summary>Decodes already temperature-scaled probabilities ([level][class]).</summary>
    public HierarchicalPrediction DecodeProbabilities(float[][] probs)
    {
        var depth = _tree.Depth;
        var levels = new LevelPrediction[depth];
        var argmax = new int[depth];
        for (var l = 0; l < depth; l++)
        {
            var p = probs[l];
            var order = TopIndices(p, Math.Min(_topK, p.Length));
            argmax[l] = order[0];
            var cls = _tree.Levels[l].Classes;
            levels[l] = new LevelPrediction(l, _tree.Levels[l].Name, order[0], cls[order[0]].Label, cls[order[0]].Path, p[order[0]],
                order.Select(i => new ClassScore(i, cls[i].Label, cls[i].Path, p[i])).ToArray());
        }

        var leafP = PathDistribution(probs);
        var bestLeaf = 0;
        for (var i = 1; i < leafP.Length; i++)
        {
            if (leafP[i] > leafP[bestLeaf])
            {
                bestLeaf = i;
            }
        }

        var pathIdx = _tree.PathOfLeaf(bestLeaf);
        var path = new NodeAnswer[depth];
        for (var l = 0; l < depth; l++)
        {
            var marginal = 0.0;
            for (var leaf = 0; leaf < leafP.Length; leaf++)
            {
                if (_tree.AncestorOfLeaf(leaf, l) == pathIdx[l])
                {
                    marginal += leafP[leaf];
                }
            }

            var c = _tree.Levels[l].Classes[pathIdx[l]];
            path[l] = new NodeAnswer(l, _tree.Levels[l].Name, c.Index, c.Label, c.Path, (float)Math.Min(1.0, marginal));
        }

        var coarseDepth = CoarseDepth(path.Select(n => (double)n.Confidence).ToArray(), _thresholds);
        return new HierarchicalPrediction(levels, path, new CoarseAnswer(coarseDepth, path.Take(coarseDepth).ToArray()),
            _tree.IsConsistentPath(argmax), probs);
    }

    /// <summary>Normalised probability of every leaf's path under this decoder's scoring.</summary>
    public double[] PathDistribution(float[][] probs)
    {
        var nLeaves = _tree.Leaves.Count;
        var logScore = new double[nLeaves];
        var max = double.NegativeInfinity;
        for (var leaf = 0; leaf < nLeaves; leaf++)
        {
            double s = 0;
            for (var l = _leafScoring ? _tree.Depth - 1 : 0; l < _tree.Depth; l++)
            {
                s += Math.Log(Math.Max(probs[l][_tree.AncestorOfLeaf(leaf, l)], 1e-30));
            }

            logScore[leaf] = s;
            max = Math.Max(max, s);
        }

        double sum = 0;
        for (var leaf = 0; leaf < nLeaves; leaf++)
        {
            logScore[leaf] = Math.Exp(logScore[leaf] - max);
            sum += logScore[leaf];
        }

        for (var leaf = 0; leaf < nLeaves; leaf++)
        {
            logScore[leaf] /= sum;
        }

        return logScore;
    }

    /// <summary>Climbing: the deepest level (counted 1..depth) whose node confidence reaches its threshold,
    /// searching from the leaf upward; 0 when no level does.</summary>
    public static int CoarseDepth(IReadOnlyList<double> nodeConfidences, IReadOnlyList<double> thresholds)
    {
        for (var l = nodeConfidences.Count - 1; l >= 0; l--)
        {
            if (nodeConfidences[l] >= thresholds[l])
            {
                return l + 1;
            }
        }

        return 0;
    }

    /// <summary>Softmax of logits / temperature, or probabilities sharpened/flattened by the temperature.</summary>
    public static float[] ToProbabilities(ReadOnlySpan<float> scores, double temperature, bool logits)
    {
        var result = new float[scores.Length];
        if (logits)
        {
            var max = float.NegativeInfinity;
            foreach (var s in scores)
            {
                max = MathF.Max(max, s);
            }

            double sum = 0;
            for (var i = 0; i < scores.Length; i++)
            {
                var e = Math.Exp((scores[i] - max) / temperature);
                result[i] = (float)e;
                sum += e;
            }

            for (var i = 0; i < result.Length; i++)
            {
                result[i] = (float)(result[i] / sum);
            }

            return result;
        }

        // p^(1/T), normalised, computed in log space: raising small probabilities to a power underflows
        // (3.7e-27 ^ 5 is 0 in float), which made every class 0.
        // Bad outputs (NaN, infinity) stay NaN so Decode refuses them rather than reading them as 0.
        foreach (var v in scores)
        {
            if (!float.IsFinite(v))
            {
                Array.Fill(result, float.NaN);
                return result;
            }
        }

        var logs = new double[scores.Length];
        var maxLog = double.NegativeInfinity;
        for (var i = 0; i < scores.Length; i++)
        {
            logs[i] = scores[i] > 0 ? Math.Log(scores[i]) / temperature : double.NegativeInfinity;
            maxLog = Math.Max(maxLog, logs[i]);
        }

        if (double.IsNegativeInfinity(maxLog))
        {
            Array.Fill(result, 1f / result.Length);
            return result;
        }

        double total = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            logs[i] = Math.Exp(logs[i] - maxLog);
            total += logs[i];
        }

        for (var i = 0; i < result.Length; i++)
        {
            result[i] = (float)(logs[i] / total);
        }

        return result;
    }

    /// <summary>Indices of the k largest values, largest first (ties: lower index first).</summary>
    public static int[] TopIndices(ReadOnlySpan<float> values, int k)
    {
        var idx = new int[values.Length];
        for (var i = 0; i < idx.Length; i++)
        {
            idx[i] = i;
        }

        var copy = values.ToArray();
        Array.Sort(idx, (a, b) => copy[b] != copy[a] ? copy[b].CompareTo(copy[a]) : a.CompareTo(b));
        return idx[..Math.Min(k, idx.Length)];
    }

    private static double[] Pad(List<double> values, int n, double fill) =>
        Enumerable.Range(0, n).Select(i => i < values.Count ? values[i] : fill).ToArray();
}
