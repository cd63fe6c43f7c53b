using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Evaluation.Metrics;

/// <summary>Computes <see cref="MetricsReport"/> from decoded images: seed-style per-level top-k, path accuracy,
/// consistency, mistake severity, hierarchical F1, coarse-answer coverage and precision, confusion matrices,
/// per-class precision/recall. Pure and stateless; thread-safe.</summary>
/// <remarks>Definitions (field notes section 1): Anc(v) is v and its ancestors without the root;
/// hP = sum|Anc(y^) &amp; Anc(y)| / sum|Anc(y^)|, hR = the same over sum|Anc(y)|, hF = 2 hP hR / (hP + hR).
/// Mistake severity is the height of the lowest common ancestor (CategoryTree.LcaHeight) averaged over wrong
/// leaves. Top-k ranks break ties by lower class index, as the decoder does.</remarks>
public static class HierarchicalMetrics
{
    /// <summary>Confusions listed per level and overall.</summary>
    public const int MostConfusedCount = 10;

    private const int EceBins = 15;

    /// <summary>Computes every metric. <paramref name="thresholds"/> only labels the coarse section (the
    /// coarse answers themselves come from the records).</summary>
    public static MetricsReport Compute(CategoryTree tree, IReadOnlyList<EvaluationRecord> records, IReadOnlyList<double>? thresholds = null)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(records);
        var depth = tree.Depth;
        var n = records.Count;
        foreach (var r in records)
        {
            if (r.TrueLeaf < 0 || r.TrueLeaf >= tree.Leaves.Count)
            {
                throw new ArgumentException($"true leaf {r.TrueLeaf} is outside 0..{tree.Leaves.Count - 1}", nameof(records));
            }

            if (r.Prediction.Probabilities.Length != depth || r.Prediction.Path.Count != depth || r.Prediction.Levels.Count != depth)
            {
                throw new ArgumentException($"a prediction does not have {depth} levels", nameof(records));
            }
        }

        var levels = new LevelMetrics[depth];
        for (var l = 0; l < depth; l++)
        {
            levels[l] = ComputeLevel(tree, records, l);
        }

        int pathRight = 0, argmaxPathRight = 0, consistent = 0, leafArgmaxRight = 0, mistakes = 0;
        long severity = 0, severityArgmax = 0, mistakesArgmax = 0;
        long hIntersect = 0, hPredicted = 0, hTrue = 0;
        foreach (var r in records)
        {
            var p = r.Prediction;
            var truePath = tree.PathOfLeaf(r.TrueLeaf);
            var allArgmaxRight = true;
            var matched = 0;
            for (var l = 0; l < depth; l++)
            {
                allArgmaxRight &= p.Levels[l].Index == truePath[l];
                matched += p.Path[l].Index == truePath[l] ? 1 : 0;
            }

            argmaxPathRight += allArgmaxRight ? 1 : 0;
            consistent += tree.IsConsistentPath(p.Levels.Select(x => x.Index).ToArray()) ? 1 : 0;

            // A consistent path is right at every level exactly when its leaf is right.
            var leaf = p.Path[^1].Index;
            if (leaf == r.TrueLeaf)
            {
                pathRight++;
            }
            else
            {
                mistakes++;
                severity += tree.LcaHeight(leaf, r.TrueLeaf);
            }

            var argLeaf = p.Levels[^1].Index;
            if (argLeaf == r.TrueLeaf)
            {
                leafArgmaxRight++;
            }
            else
            {
                mistakesArgmax++;
                severityArgmax += tree.LcaHeight(argLeaf, r.TrueLeaf);
            }

            hIntersect += matched;
            hPredicted += depth;
            hTrue += depth;
        }

        var (hp, hr, hf) = HierarchicalPrf(hIntersect, hPredicted, hTrue);
        var overallConfused = levels.SelectMany(x => x.MostConfused)
            .OrderByDescending(c => c.Count).ThenByDescending(c => c.Level).ThenBy(c => c.TrueIndex).ThenBy(c => c.PredictedIndex)
            .Take(MostConfusedCount).ToList();
        return new MetricsReport
        {
            Images = n,
            Levels = levels,
            PathAccuracy = Ratio(pathRight, n),
            PathAccuracyArgmax = Ratio(argmaxPathRight, n),
            Consistency = Ratio(consistent, n),
            LeafAccuracyConsistent = Ratio(pathRight, n),
            LeafAccuracyArgmax = Ratio(leafArgmaxRight, n),
            MistakeSeverity = mistakes == 0 ? 0 : (double)severity / mistakes,
            MistakeSeverityArgmax = mistakesArgmax == 0 ? 0 : (double)severityArgmax / mistakesArgmax,
            Mistakes = mistakes,
            MeanLcaHeight = n == 0 ? 0 : (double)severity / n,
            HierarchicalPrecision = hp,
            HierarchicalRecall = hr,
            HierarchicalF1 = hf,
            Coarse = ComputeCoarse(tree, records, thresholds),
            MostConfused = overallConfused,
        };
    }

    /// <summary>Rank of class <paramref name="index"/> in <paramref name="probs"/> (0 = argmax), ties broken
    /// by lower index first like <c>HierarchicalDecoder.TopIndices</c>.</summary>
    public static int RankOf(ReadOnlySpan<float> probs, int index)
    {
        var rank = 0;
        var v = probs[index];
        for (var j = 0; j < probs.Length; j++)
        {
            if (probs[j] > v || (probs[j] == v && j < index))
            {
                rank++;
            }
        }

        return rank;
    }

    /// <summary>Hierarchical precision, recall and F1 from summed set sizes (0 where undefined).</summary>
    public static (double Precision, double Recall, double F1) HierarchicalPrf(long intersect, long predicted, long truth)
    {
        var hp = predicted == 0 ? 0 : (double)intersect / predicted;
        var hr = truth == 0 ? 0 : (double)intersect / truth;
        var hf = hp + hr == 0 ? 0 : 2 * hp * hr / (hp + hr);
        return (hp, hr, hf);
    }

    private static LevelMetrics ComputeLevel(CategoryTree tree, IReadOnlyList<EvaluationRecord> records, int l)
    {
        var level = tree.Levels[l];
        var c = level.Count;
        var n = records.Count;
        var topHits = new int[5];
        var confusion = NewMatrix(c);
        var confusionArgmax = NewMatrix(c);
        double nll = 0, confSum = 0;
        var binCount = new int[EceBins];
        var binConf = new double[EceBins];
        var binRight = new int[EceBins];
        var consistentRight = 0;
        foreach (var r in records)
        {
            var y = tree.AncestorOfLeaf(r.TrueLeaf, l);
            var probs = r.Prediction.Probabilities[l];
            if (probs.Length != c)
            {
                throw new ArgumentException($"level {l} has {probs.Length} probabilities for {c} classes", nameof(records));
            }

            var rank = RankOf(probs, y);
            for (var k = rank; k < 5; k++)
            {
                topHits[k]++;
            }

            nll -= Math.Log(Math.Max(probs[y], 1e-12));
            var arg = r.Prediction.Levels[l].Index;
            var top = (double)probs[arg];
            confSum += top;
            var bin = Math.Clamp((int)(top * EceBins), 0, EceBins - 1);
            binCount[bin]++;
            binConf[bin] += top;
            binRight[bin] += arg == y ? 1 : 0;

            var pathIdx = r.Prediction.Path[l].Index;
            confusion[y][pathIdx]++;
            confusionArgmax[y][arg]++;
            consistentRight += pathIdx == y ? 1 : 0;
        }

        double ece = 0;
        for (var b = 0; b < EceBins; b++)
        {
            if (binCount[b] > 0)
            {
                ece += Math.Abs((double)binRight[b] / binCount[b] - binConf[b] / binCount[b]) * binCount[b] / n;
            }
        }

        var perClass = new ClassMetrics[c];
        for (var i = 0; i < c; i++)
        {
            var support = confusion[i].Sum();
            var predicted = 0;
            for (var t = 0; t < c; t++)
            {
                predicted += confusion[t][i];
            }

            var correct = confusion[i][i];
            var precision = Ratio(correct, predicted, 0);
            var recall = Ratio(correct, support, 0);
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            var cls = level.Classes[i];
            perClass[i] = new ClassMetrics(i, cls.Label, cls.Path, support, predicted, correct, precision, recall, f1);
        }

        var pairs = new List<ConfusedPair>();
        for (var t = 0; t < c; t++)
        {
            for (var p = 0; p < c; p++)
            {
                if (t != p && confusion[t][p] > 0)
                {
                    pairs.Add(new ConfusedPair(l, level.Name, t, level.Classes[t].Label, p, level.Classes[p].Label,
                        confusion[t][p], Ratio(confusion[t][p], perClass[t].Support, 0)));
                }
            }
        }

        return new LevelMetrics
        {
            Level = l,
            Name = level.Name,
            Classes = c,
            Top1 = Ratio(topHits[0], n),
            Top2 = Ratio(topHits[1], n),
            Top3 = Ratio(topHits[2], n),
            Top4 = Ratio(topHits[3], n),
            Top5 = Ratio(topHits[4], n),
            ConsistentAccuracy = Ratio(consistentRight, n),
            Nll = n == 0 ? 0 : nll / n,
            Ece = ece,
            MeanConfidence = n == 0 ? 0 : confSum / n,
            Confusion = confusion,
            ConfusionArgmax = confusionArgmax,
            PerClass = perClass,
            MostConfused = pairs.OrderByDescending(x => x.Count).ThenBy(x => x.TrueIndex).ThenBy(x => x.PredictedIndex)
                .Take(MostConfusedCount).ToList(),
        };
    }

    private static CoarseMetrics ComputeCoarse(CategoryTree tree, IReadOnlyList<EvaluationRecord> records, IReadOnlyList<double>? thresholds)
    {
        var depth = tree.Depth;
        var n = records.Count;
        var byDepth = new int[depth + 1];
        var rightByDepth = new int[depth + 1];
        long hIntersect = 0, hPredicted = 0, hTrue = 0;
        foreach (var r in records)
        {
            var coarse = r.Prediction.Coarse;
            var d = coarse.Depth;
            if (d < 0 || d > depth || coarse.Nodes.Count != d)
            {
                throw new ArgumentException($"coarse answer depth {d} is outside 0..{depth}", nameof(records));
            }

            byDepth[d]++;
            var matched = 0;
            for (var l = 0; l < d; l++)
            {
                matched += coarse.Nodes[l].Index == tree.AncestorOfLeaf(r.TrueLeaf, l) ? 1 : 0;
            }

            // The answer is right when its deepest node is an ancestor-or-self of the truth.
            if (d > 0 && coarse.Nodes[d - 1].Index == tree.AncestorOfLeaf(r.TrueLeaf, d - 1))
            {
                rightByDepth[d]++;
            }

            hIntersect += matched;
            hPredicted += d;
            hTrue += depth;
        }

        var coverage = new double[depth];
        var atLeast = 0;
        for (var l = depth - 1; l >= 0; l--)
        {
            atLeast += byDepth[l + 1];
            coverage[l] = Ratio(atLeast, n);
        }

        var answered = n - byDepth[0];
        var right = rightByDepth.Sum();
        return new CoarseMetrics
        {
            CoverageByLevel = coverage,
            Precision = Ratio(right, answered, 1.0),
            Answered = answered,
            AnswersByDepth = byDepth,
            PrecisionByDepth = Enumerable.Range(1, depth).Select(d => byDepth[d] == 0 ? (double?)null : (double)rightByDepth[d] / byDepth[d]).ToArray(),
            MeanDepth = n == 0 ? 0 : Enumerable.Range(0, depth + 1).Sum(d => (double)d * byDepth[d]) / n,
            HierarchicalF1 = HierarchicalPrf(hIntersect, hPredicted, hTrue).F1,
            Thresholds = thresholds?.ToArray() ?? [],
        };
    }

    private static int[][] NewMatrix(int c) => Enumerable.Range(0, c).Select(_ => new int[c]).ToArray();

    private static double Ratio(long num, long den, double whenEmpty = 0) => den == 0 ? whenEmpty : (double)num / den;
}
