using CsCheck;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Evaluation.Metrics;
using static FmaEdge.Evaluation.Tests.Metrics.MetricsFixtures;

namespace FmaEdge.Evaluation.Tests.Metrics;

public sealed class MetricsTests
{
    private static readonly FmaEdge.Core.Taxonomy.CategoryTree Tree = SmallTree();

    // Leaves: 0 A/a1/x, 1 A/a1/y, 2 A/a2/z, 3 B/b1/u, 4 B/b1/v. L2: 0 a1, 1 a2, 2 b1.
    private static float[][] Probs(int l1, int l2, int l3) => [Peak(2, l1), Peak(3, l2), Peak(5, l3)];

    [Fact]
    public void Compute_LeafRanksZeroOneFour_TopKCountsRanksBelowK()
    {
        // True leaf x (0) for all three; leaf-level rows put x at rank 0, 1 and 4.
        float[] rank0 = [0.5f, 0.2f, 0.15f, 0.1f, 0.05f];
        float[] rank1 = [0.3f, 0.4f, 0.15f, 0.1f, 0.05f];
        float[] rank4 = [0.01f, 0.4f, 0.3f, 0.2f, 0.09f];
        var records = new[] { rank0, rank1, rank4 }
            .Select(row => new EvaluationRecord(0, Prediction(Tree, [Peak(2, 0), Peak(3, 0), row], 0)))
            .ToList();

        var m = HierarchicalMetrics.Compute(Tree, records);

        var leaf = m.Levels[2];
        Assert.Equal(1.0 / 3, leaf.Top1, 12);
        Assert.Equal(2.0 / 3, leaf.Top2, 12);
        Assert.Equal(2.0 / 3, leaf.Top3, 12);
        Assert.Equal(2.0 / 3, leaf.Top4, 12);
        Assert.Equal(1.0, leaf.Top5, 12);
        Assert.Equal(1.0, m.Levels[0].Top1, 12);
    }

    [Fact]
    public void RankOf_TiedProbabilities_LowerIndexRanksFirst()
    {
        float[] p = [0.25f, 0.25f, 0.5f];

        Assert.Equal(1, HierarchicalMetrics.RankOf(p, 0));
        Assert.Equal(2, HierarchicalMetrics.RankOf(p, 1));
        Assert.Equal(0, HierarchicalMetrics.RankOf(p, 2));
    }

    [Fact]
    public void Compute_InconsistentArgmaxes_ConsistencyAndBothPathAccuracies()
    {
        // 1: argmaxes A, a1, x (valid, right), path x.
        // 2: argmaxes A, b1, x (invalid: b1 is not under A), path x (right).
        // 3: argmaxes B, b1, u (valid, wrong), path u (wrong).
        // 4: argmaxes A, a1, y (valid, wrong leaf), path x (right).
        var records = new List<EvaluationRecord>
        {
            new(0, Prediction(Tree, Probs(0, 0, 0), 0)),
            new(0, Prediction(Tree, Probs(0, 2, 0), 0)),
            new(0, Prediction(Tree, Probs(1, 2, 3), 3)),
            new(0, Prediction(Tree, Probs(0, 0, 1), 0)),
        };

        var m = HierarchicalMetrics.Compute(Tree, records);

        Assert.Equal(3.0 / 4, m.Consistency, 12);
        Assert.Equal(3.0 / 4, m.PathAccuracy, 12);          // images 1, 2, 4
        Assert.Equal(1.0 / 4, m.PathAccuracyArgmax, 12);    // image 1 only
        Assert.Equal(3.0 / 4, m.LeafAccuracyConsistent, 12);
        Assert.Equal(2.0 / 4, m.LeafAccuracyArgmax, 12);    // images 1 and 2 have argmax x
        Assert.Equal(3.0 / 4, m.Levels[0].Top1, 12);
        Assert.Equal(2.0 / 4, m.Levels[1].Top1, 12);        // a1 in images 1 and 4
        Assert.Equal(3.0 / 4, m.Levels[1].ConsistentAccuracy, 12);
    }

    [Fact]
    public void Compute_WrongLeavesAtEachDistance_MistakeSeverityIsMeanLcaHeightOfWrongOnes()
    {
        // True x. Answers: x (right), y (sibling: LCA a1, height 1), z (cousin: LCA A, height 2), u (only the root: 3).
        var records = new[] { 0, 1, 2, 3 }.Select(leaf =>
            new EvaluationRecord(0, Prediction(Tree, Probs(Tree.AncestorOfLeaf(leaf, 0), Tree.AncestorOfLeaf(leaf, 1), leaf), leaf))).ToList();

        var m = HierarchicalMetrics.Compute(Tree, records);

        Assert.Equal(3, m.Mistakes);
        Assert.Equal((1 + 2 + 3) / 3.0, m.MistakeSeverity, 12);
        Assert.Equal((0 + 1 + 2 + 3) / 4.0, m.MeanLcaHeight, 12);
        Assert.Equal((1 + 2 + 3) / 3.0, m.MistakeSeverityArgmax, 12);
    }

    [Fact]
    public void Compute_PartlyRightPaths_HierarchicalF1FromAncestorSets()
    {
        // True x = {A, a1, x}. Answers x (3 shared), y (A, a1 shared: 2), u (0 shared). Every set has 3 nodes.
        var records = new[] { 0, 1, 3 }.Select(leaf =>
            new EvaluationRecord(0, Prediction(Tree, Probs(Tree.AncestorOfLeaf(leaf, 0), Tree.AncestorOfLeaf(leaf, 1), leaf), leaf))).ToList();

        var m = HierarchicalMetrics.Compute(Tree, records);

        Assert.Equal(5.0 / 9, m.HierarchicalPrecision, 12);
        Assert.Equal(5.0 / 9, m.HierarchicalRecall, 12);
        Assert.Equal(5.0 / 9, m.HierarchicalF1, 12);
    }

    [Fact]
    public void Compute_CoarseAnswersAtMixedDepths_CoveragePrecisionAndCoarseF1()
    {
        // True leaf z (A/a2/z) for all. Coarse answers:
        // depth 3 path z (right), depth 3 path x (wrong), depth 2 path a2 (right), depth 1 A (right), depth 1 B (wrong), depth 0.
        var records = new List<EvaluationRecord>
        {
            new(2, Prediction(Tree, Probs(0, 1, 2), 2, 3)),
            new(2, Prediction(Tree, Probs(0, 0, 0), 0, 3)),
            new(2, Prediction(Tree, Probs(0, 1, 2), 2, 2)),
            new(2, Prediction(Tree, Probs(0, 1, 2), 2, 1)),
            new(2, Prediction(Tree, Probs(1, 2, 3), 3, 1)),
            new(2, Prediction(Tree, Probs(0, 1, 2), 2, 0)),
        };

        var m = HierarchicalMetrics.Compute(Tree, records, [0.5, 0.6, 0.7]);

        Assert.Equal([5.0 / 6, 3.0 / 6, 2.0 / 6], m.Coarse.CoverageByLevel);
        Assert.Equal(5, m.Coarse.Answered);
        Assert.Equal(3.0 / 5, m.Coarse.Precision, 12);
        Assert.Equal([1, 2, 1, 2], m.Coarse.AnswersByDepth);
        Assert.Equal([0.5, 1.0, 0.5], m.Coarse.PrecisionByDepth);
        Assert.Equal((3 + 3 + 2 + 1 + 1 + 0) / 6.0, m.Coarse.MeanDepth, 12);
        Assert.Equal([0.5, 0.6, 0.7], m.Coarse.Thresholds);

        // Shared nodes: 3 + 1 (A) + 2 + 1 + 0 + 0 = 7; predicted nodes 10; true nodes 18.
        double hp = 7.0 / 10, hr = 7.0 / 18;
        Assert.Equal(2 * hp * hr / (hp + hr), m.Coarse.HierarchicalF1, 12);
    }

    [Fact]
    public void Compute_KnownAnswers_ConfusionPerClassAndMostConfused()
    {
        // Leaf level: two x answered y, one x right, one u answered v, one v right.
        var records = new List<EvaluationRecord>
        {
            new(0, Prediction(Tree, Probs(0, 0, 1), 1)),
            new(0, Prediction(Tree, Probs(0, 0, 1), 1)),
            new(0, Prediction(Tree, Probs(0, 0, 0), 0)),
            new(3, Prediction(Tree, Probs(1, 2, 4), 4)),
            new(4, Prediction(Tree, Probs(1, 2, 4), 4)),
        };

        var m = HierarchicalMetrics.Compute(Tree, records);
        var leaf = m.Levels[2];

        Assert.Equal(2, leaf.Confusion[0][1]);
        Assert.Equal(1, leaf.Confusion[0][0]);
        Assert.Equal(1, leaf.Confusion[3][4]);
        Assert.Equal(5, leaf.Confusion.Sum(r => r.Sum()));
        var x = leaf.PerClass[0];
        Assert.Equal((3, 1, 1, 1.0, 1.0 / 3), (x.Support, x.Predicted, x.Correct, x.Precision, x.Recall));
        var v = leaf.PerClass[4];
        Assert.Equal((1, 2, 1, 0.5, 1.0), (v.Support, v.Predicted, v.Correct, v.Precision, v.Recall));
        Assert.Equal(2 * 0.5 * 1.0 / 1.5, v.F1, 12);
        Assert.Equal(0.0, leaf.PerClass[1].Recall);  // y never present
        Assert.Equal(0.0, leaf.PerClass[1].Precision); // predicted twice, never right
        var top = leaf.MostConfused[0];
        Assert.Equal(("x", "y", 2, 2.0 / 3), (top.TrueLabel, top.PredictedLabel, top.Count, top.Share));
        Assert.Equal(2, leaf.MostConfused.Count);
        Assert.Equal(top, m.MostConfused[0]);
        Assert.Empty(m.Levels[0].MostConfused);
    }

    [Fact]
    public void Compute_KnownProbabilities_NllAndEce()
    {
        // Leaf-level true-class probabilities 0.8 (right) and 0.1 (wrong; argmax 0.6).
        float[] right = [0.8f, 0.05f, 0.05f, 0.05f, 0.05f];
        float[] wrong = [0.1f, 0.6f, 0.1f, 0.1f, 0.1f];
        var records = new List<EvaluationRecord>
        {
            new(0, Prediction(Tree, [Peak(2, 0), Peak(3, 0), right], 0)),
            new(0, Prediction(Tree, [Peak(2, 0), Peak(3, 0), wrong], 1)),
        };

        var m = HierarchicalMetrics.Compute(Tree, records);

        Assert.Equal(-(Math.Log(0.8f) + Math.Log(0.1f)) / 2, m.Levels[2].Nll, 6);
        // Two bins of one image each: |1 - 0.8| / 2 + |0 - 0.6| / 2.
        Assert.Equal((0.2 + 0.6) / 2, m.Levels[2].Ece, 6);
        Assert.Equal((0.8 + 0.6) / 2, m.Levels[2].MeanConfidence, 6);
    }

    [Fact]
    public void Compute_LeafOutsideTree_Throws()
    {
        var records = new List<EvaluationRecord> { new(9, Prediction(Tree, Probs(0, 0, 0), 0)) };

        Assert.Throws<ArgumentException>(() => HierarchicalMetrics.Compute(Tree, records));
    }

    [Fact]
    public void Compute_RandomTablesThroughDecoder_InvariantsHold()
    {
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[1, 40], Gen.Double[0, 1]).Sample(t =>
        {
            var (seed, n, thr) = t;
            var rng = new Random(seed);
            var tree = RandomTree(rng);
            var spec = new DecodingSpec { Thresholds = Enumerable.Range(0, tree.Depth).Select(_ => thr * rng.NextDouble()).ToList() };
            var decoder = new HierarchicalDecoder(tree, spec, outputsAreLogits: false);
            var records = Enumerable.Range(0, n)
                .Select(_ => new EvaluationRecord(rng.Next(tree.Leaves.Count), decoder.DecodeProbabilities(RandomProbabilities(tree, rng))))
                .ToList();

            var m = HierarchicalMetrics.Compute(tree, records, decoder.Thresholds);

            // The path-consistent answer is consistent by construction: scored as if it were the argmaxes,
            // consistency is exactly 1.
            var asArgmax = records.Select(r => r with
            {
                Prediction = r.Prediction with
                {
                    Levels = r.Prediction.Path.Select(p => new LevelPrediction(p.Level, p.LevelName, p.Index, p.Label, p.Path, p.Confidence, [])).ToList(),
                },
            }).ToList();
            Assert.Equal(1.0, HierarchicalMetrics.Compute(tree, asArgmax).Consistency);

            Assert.InRange(m.HierarchicalF1, 0, 1);
            Assert.InRange(m.Coarse.HierarchicalF1, 0, 1);
            Assert.InRange(m.Coarse.Precision, 0, 1);
            for (var l = 1; l < tree.Depth; l++)
            {
                Assert.True(m.Coarse.CoverageByLevel[l] <= m.Coarse.CoverageByLevel[l - 1]);
            }

            foreach (var level in m.Levels)
            {
                var topK = level.TopK;
                for (var k = 1; k < topK.Count; k++)
                {
                    Assert.True(topK[k] >= topK[k - 1]);
                }

                Assert.Equal(n, level.Confusion.Sum(r => r.Sum()));
                Assert.Equal(n, level.ConfusionArgmax.Sum(r => r.Sum()));
                Assert.True(m.PathAccuracy <= level.ConsistentAccuracy + 1e-12);
                Assert.InRange(level.Ece, 0, 1);
            }

            Assert.Equal(m.PathAccuracy, m.LeafAccuracyConsistent);
            Assert.True(m.PathAccuracyArgmax <= m.Consistency + 1e-12);
            Assert.True(m.PathAccuracyArgmax <= m.LeafAccuracyArgmax + 1e-12);
            Assert.True(m.Mistakes == 0 ? m.MistakeSeverity == 0 : m.MistakeSeverity is >= 1 and var s && s <= tree.Depth);
        }, iter: 200);
    }
}
