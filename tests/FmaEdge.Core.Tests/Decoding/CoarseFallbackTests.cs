using CsCheck;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Core.Tests.Decoding;

/// <summary>The coarse ("climbing") answer: the deepest level whose node confidence reaches its threshold.</summary>
public sealed class CoarseFallbackTests
{
    private enum At { Exactly, JustBelow }

    /// <summary>Thresholds that make level k (1-based; 0 = none) the deepest passing level: every level below k
    /// gets a bar just above its confidence, level k a bar exactly at or just below its confidence, and the
    /// levels above k a bar nothing can reach (climbing stops at k and never looks at them).</summary>
    private static List<double> ThresholdsFor(IReadOnlyList<NodeAnswer> path, int k, At at)
    {
        var t = new List<double>();
        for (var l = 0; l < path.Count; l++)
        {
            double conf = path[l].Confidence;
            t.Add(l + 1 < k ? 2.0
                : l + 1 == k ? (at == At.Exactly ? conf : Math.BitDecrement(conf))
                : Math.BitIncrement(conf));
        }

        return t;
    }

    private static HierarchicalPrediction Decode(CategoryTree tree, float[][] probs, List<double> thresholds, string scoring = PathScorings.Product) =>
        new HierarchicalDecoder(tree, new DecodingSpec { Thresholds = thresholds, PathScoring = scoring }, outputsAreLogits: false).DecodeProbabilities(probs);

    [Fact]
    public void Decode_ThresholdsAtEveryLevelBoundary_GiveTheExpectedDepth()
    {
        Gen.Select(RandomTrees.Probabilities, Gen.Bool).Sample((c, leafScoring) =>
        {
            var scoring = leafScoring ? PathScorings.Leaf : PathScorings.Product;
            var path = Decode(c.Tree, c.Scores, [], scoring).Path;

            for (var k = 0; k <= c.Tree.Depth; k++)
            {
                foreach (var at in new[] { At.Exactly, At.JustBelow })
                {
                    var pred = Decode(c.Tree, c.Scores, ThresholdsFor(path, k, at), scoring);

                    Assert.Equal(k, pred.Coarse.Depth);
                    Assert.Equal(path.Take(k), pred.Coarse.Nodes);
                    Assert.Equal(k == 0 ? null : path[k - 1], pred.Coarse.Deepest);
                    // Thresholds never change the path answer itself.
                    Assert.Equal(path, pred.Path);
                }
            }
        }, iter: 300);
    }

    [Fact]
    public void Decode_BarJustAboveEveryConfidence_GivesDepthZero()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            var path = Decode(c.Tree, c.Scores, []).Path;

            var pred = Decode(c.Tree, c.Scores, path.Select(n => Math.BitIncrement((double)n.Confidence)).ToList());

            Assert.Equal(0, pred.Coarse.Depth);
            Assert.Empty(pred.Coarse.Nodes);
            Assert.Null(pred.Coarse.Deepest);
        }, iter: 300);
    }

    [Fact]
    public void Decode_EqualBarsRaisedStepByStep_ClimbOneLevelAtATime()
    {
        // With one bar for all levels, the depth can only fall as the bar rises (confidences never rise toward the leaf).
        RandomTrees.Probabilities.Sample(c =>
        {
            var path = Decode(c.Tree, c.Scores, []).Path;
            var previous = c.Tree.Depth;

            var bars = path.Select(n => (double)n.Confidence).Append(0).Append(1)
                .SelectMany(b => new[] { Math.BitDecrement(b), b, Math.BitIncrement(b) }).Distinct().Order();
            foreach (var t in bars)
            {
                var depth = Decode(c.Tree, c.Scores, Enumerable.Repeat(t, c.Tree.Depth).ToList()).Coarse.Depth;
                var expected = path.Count(n => n.Confidence >= t);
                Assert.Equal(expected, depth);
                Assert.True(depth <= previous);
                previous = depth;
            }

            Assert.Equal(0, previous);
        }, iter: 200);
    }

    [Fact]
    public void Decode_RealTreeConfidentOnlyAboutLevelTwo_AnswersLevelsOneAndTwo()
    {
        // The users' case: "below the bar at level 3, give the level 1 and 2 answer".
        var tree = DatasetLoader.ScanFolder(TestPaths.DatasetTrain).Tree;
        var crack = tree.FindLeaf("crack")!.Value;
        var brk = tree.FindLeaf("break")!.Value;
        var leafLogits = new float[tree.Leaves.Count];
        leafLogits[crack] = 4f;
        leafLogits[brk] = 3.9f;
        var decoder = new HierarchicalDecoder(tree, new DecodingSpec { PathScoring = PathScorings.Leaf, Thresholds = [0.5, 0.7, 0.8] });

        var pred = decoder.Decode(tree.Levels.Select(l => l.Depth == 2 ? leafLogits : new float[l.Count]).ToArray());

        Assert.Equal("magnetic_tile/fracture/crack", pred.Path[2].Path);
        Assert.InRange(pred.Path[2].Confidence, 0.3f, 0.8f);
        Assert.InRange(pred.Path[1].Confidence, 0.7f, 1f);
        Assert.Equal(2, pred.Coarse.Depth);
        Assert.Equal("magnetic_tile/fracture", pred.Coarse.Deepest!.Path);
        Assert.Equal(["magnetic_tile", "magnetic_tile/fracture"], pred.Coarse.Nodes.Select(n => n.Path));
    }

    [Fact]
    public void CoarseDepth_DeeperLevelPassingWhileAShallowerFails_KeepsTheDeeperAnswer()
    {
        // Climbing starts at the leaf and stops at the first level that passes; upper bars are not re-checked.
        Assert.Equal(3, HierarchicalDecoder.CoarseDepth([0.9, 0.8, 0.7], [0.95, 0.95, 0.5]));
        Assert.Equal(2, HierarchicalDecoder.CoarseDepth([0.9, 0.8, 0.7], [0.95, 0.8, 0.71]));
        Assert.Equal(1, HierarchicalDecoder.CoarseDepth([0.9, 0.8, 0.7], [0.9, 0.81, 0.71]));
        Assert.Equal(0, HierarchicalDecoder.CoarseDepth([0.9, 0.8, 0.7], [0.91, 0.81, 0.71]));
        Assert.Equal(0, HierarchicalDecoder.CoarseDepth([], []));
    }

    [Fact]
    public void Decoder_DefaultThresholds_AlwaysGiveAFullAnswer()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            var decoder = new HierarchicalDecoder(c.Tree, outputsAreLogits: false);

            var pred = decoder.DecodeProbabilities(c.Scores);

            Assert.Equal(c.Tree.Depth, pred.Coarse.Depth);
            Assert.Equal(pred.Path, pred.Coarse.Nodes);
            Assert.Equal(Enumerable.Repeat(0.0, c.Tree.Depth), decoder.Thresholds);
        }, iter: 100);
    }

    [Fact]
    public void Decoder_ShortThresholdList_PadsMissingLevelsWithZero()
    {
        var tree = OnnxTestModels.SmallTree();

        var decoder = new HierarchicalDecoder(tree, new DecodingSpec { Thresholds = [0.9] });

        Assert.Equal([0.9, 0.0], decoder.Thresholds);
    }
}
