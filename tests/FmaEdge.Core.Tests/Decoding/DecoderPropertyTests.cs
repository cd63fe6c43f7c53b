using CsCheck;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Core.Tests.Decoding;

/// <summary>Properties of hierarchical decoding on random trees and random tables, checked against brute force.</summary>
public sealed class DecoderPropertyTests
{
    private const int Iterations = 400;

    private static HierarchicalDecoder Decoder(CategoryTree tree, string scoring = PathScorings.Product, int topK = 5, bool logits = false) =>
        new(tree, new DecodingSpec { PathScoring = scoring, TopK = topK }, outputsAreLogits: logits);

    /// <summary>Product of level probabilities along every leaf's path, in double.</summary>
    private static double[] BruteProducts(CategoryTree tree, float[][] probs) =>
        Enumerable.Range(0, tree.Leaves.Count).Select(leaf =>
        {
            var p = 1.0;
            for (var l = 0; l < tree.Depth; l++)
            {
                p *= probs[l][tree.AncestorOfLeaf(leaf, l)];
            }

            return p;
        }).ToArray();

    [Fact]
    public void DecodeProbabilities_AnyTable_PathIsAValidRootToLeafPath()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            foreach (var scoring in new[] { PathScorings.Product, PathScorings.Leaf })
            {
                var pred = Decoder(c.Tree, scoring).DecodeProbabilities(c.Scores);

                Assert.Equal(c.Tree.Depth, pred.Path.Count);
                Assert.True(c.Tree.IsConsistentPath(pred.Path.Select(n => n.Index).ToArray()));
                for (var l = 0; l < c.Tree.Depth; l++)
                {
                    var cls = c.Tree.Levels[l].Classes[pred.Path[l].Index];
                    Assert.Equal((l, cls.Path, cls.Label, c.Tree.Levels[l].Name), (pred.Path[l].Level, pred.Path[l].Path, pred.Path[l].Label, pred.Path[l].LevelName));
                }

                Assert.Equal(pred.Path[^1].Index, pred.LeafIndex);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_ProductScoring_MaximisesTheProductOverAllLeaves()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            var pred = Decoder(c.Tree).DecodeProbabilities(c.Scores);

            var products = BruteProducts(c.Tree, c.Scores);
            var best = products.Max();
            // Equal up to rounding (ties may pick either leaf; zero products are clamped at 1e-30 per level).
            Assert.True(products[pred.LeafIndex] >= best * (1 - 1e-9), $"chose {products[pred.LeafIndex]}, best {best}");
        }, iter: Iterations);
    }

    [Fact]
    public void PathDistribution_ProductScoring_IsTheNormalisedProduct()
    {
        RandomTrees.Probabilities.Where(c => BruteProducts(c.Tree, c.Scores).Sum() > 1e-12).Sample(c =>
        {
            var dist = Decoder(c.Tree).PathDistribution(c.Scores);

            var products = BruteProducts(c.Tree, c.Scores);
            var total = products.Sum();
            Assert.Equal(1.0, dist.Sum(), 1e-9);
            for (var leaf = 0; leaf < products.Length; leaf++)
            {
                Assert.Equal(products[leaf] / total, dist[leaf], 1e-9);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_LeafScoring_EqualsTheLeafArgmax()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            var pred = Decoder(c.Tree, PathScorings.Leaf).DecodeProbabilities(c.Scores);

            var leafProbs = c.Scores[^1];
            var argmax = Array.IndexOf(leafProbs, leafProbs.Max());
            Assert.Equal(argmax, pred.LeafIndex);
            Assert.Equal(pred.Levels[^1].Index, pred.LeafIndex);
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_NodeConfidence_IsTheSumOverItsLeavesAndNeverRisesTowardTheLeaf()
    {
        RandomTrees.Probabilities.Sample(c =>
        {
            foreach (var scoring in new[] { PathScorings.Product, PathScorings.Leaf })
            {
                var decoder = Decoder(c.Tree, scoring);
                var pred = decoder.DecodeProbabilities(c.Scores);
                var dist = decoder.PathDistribution(c.Scores);

                for (var l = 0; l < c.Tree.Depth; l++)
                {
                    var node = pred.Path[l];
                    var sum = Enumerable.Range(0, dist.Length).Where(leaf => c.Tree.AncestorOfLeaf(leaf, l) == node.Index).Sum(leaf => dist[leaf]);
                    Assert.Equal(sum, node.Confidence, 1e-5);
                    Assert.InRange(node.Confidence, 0f, 1f);
                    if (l > 0)
                    {
                        Assert.True(pred.Path[l - 1].Confidence >= node.Confidence, $"level {l - 1}: {pred.Path[l - 1].Confidence} < level {l}: {node.Confidence}");
                    }
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_LeafScoring_UpperLevelConfidenceIsTheLeafMarginal()
    {
        // For flat heads the upper levels are the sums of leaf probabilities; the other levels' outputs are ignored.
        RandomTrees.Probabilities.Sample(c =>
        {
            var pred = Decoder(c.Tree, PathScorings.Leaf).DecodeProbabilities(c.Scores);

            var leafProbs = c.Scores[^1];
            var total = leafProbs.Sum(x => (double)x);
            for (var l = 0; l < c.Tree.Depth; l++)
            {
                var marginal = Enumerable.Range(0, leafProbs.Length).Where(leaf => c.Tree.AncestorOfLeaf(leaf, l) == pred.Path[l].Index).Sum(leaf => (double)leafProbs[leaf]);
                Assert.Equal(marginal / total, pred.Path[l].Confidence, 1e-5);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_TopK_IsSortedOfTheRightSizeAndStartsAtTheArgmax()
    {
        Gen.Select(RandomTrees.Probabilities, Gen.Int[1, 8]).Sample((c, k) =>
        {
            var pred = Decoder(c.Tree, topK: k).DecodeProbabilities(c.Scores);

            for (var l = 0; l < c.Tree.Depth; l++)
            {
                var level = pred.Levels[l];
                var probs = c.Scores[l];
                Assert.Equal(Math.Min(k, probs.Length), level.TopK.Count);
                Assert.Equal(level.TopK.Count, level.TopK.Select(s => s.Index).Distinct().Count());
                Assert.Equal(level.Index, level.TopK[0].Index);
                Assert.Equal(probs.Max(), level.Confidence);
                for (var i = 1; i < level.TopK.Count; i++)
                {
                    Assert.True(level.TopK[i - 1].Probability >= level.TopK[i].Probability);
                }

                var excluded = Enumerable.Range(0, probs.Length).Except(level.TopK.Select(s => s.Index));
                Assert.All(excluded, i => Assert.True(probs[i] <= level.TopK[^1].Probability));
                Assert.All(level.TopK, s => Assert.Equal((probs[s.Index], c.Tree.Levels[l].Classes[s.Index].Path), (s.Probability, s.Path)));
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeProbabilities_ArgmaxConsistent_TellsWhetherTheLevelArgmaxesFormAPath()
    {
        var sawBoth = new bool[2];
        RandomTrees.Probabilities.Sample(c =>
        {
            var pred = Decoder(c.Tree).DecodeProbabilities(c.Scores);

            var argmax = c.Scores.Select(p => Array.IndexOf(p, p.Max())).ToArray();
            Assert.Equal(argmax, pred.Levels.Select(l => l.Index));
            var consistent = Enumerable.Range(1, c.Tree.Depth - 1).All(l => c.Tree.ParentOf(l, argmax[l]) == argmax[l - 1]);
            Assert.Equal(consistent, pred.ArgmaxConsistent);
            if (consistent)
            {
                // A consistent argmax path has the largest product of all, so the path answer agrees with it.
                Assert.Equal(BruteProducts(c.Tree, c.Scores)[argmax[^1]], BruteProducts(c.Tree, c.Scores).Max());
            }

            lock (sawBoth)
            {
                sawBoth[consistent ? 1 : 0] = true;
            }
        }, iter: Iterations);
        Assert.Equal([true, true], sawBoth);
    }

    [Fact]
    public void Decode_LogitsAtTemperatureOne_EqualSoftmax()
    {
        RandomTrees.Logits.Sample(c =>
        {
            var pred = Decoder(c.Tree, logits: true).Decode(c.Scores);

            for (var l = 0; l < c.Tree.Depth; l++)
            {
                var z = c.Scores[l];
                var max = z.Max();
                var exp = z.Select(x => Math.Exp(x - max)).ToArray();
                var sum = exp.Sum();
                for (var i = 0; i < z.Length; i++)
                {
                    Assert.Equal(exp[i] / sum, pred.Probabilities[l][i], 1e-6);
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void ToProbabilities_AnyTemperature_SumsToOneAndKeepsTheOrder()
    {
        Gen.Select(Gen.Float[-30f, 30f].Array[1, 40], Gen.Double[0.05, 20.0], Gen.Bool).Sample((scores, t, logits) =>
        {
            var input = logits ? scores : scores.Select(MathF.Abs).ToArray();

            var p = HierarchicalDecoder.ToProbabilities(input, t, logits);

            Assert.Equal(1.0, p.Sum(x => (double)x), 1e-5);
            Assert.All(p, x => Assert.InRange(x, 0f, 1f));
            for (var i = 0; i < p.Length; i++)
            {
                for (var j = 0; j < p.Length; j++)
                {
                    if (input[i] > input[j])
                    {
                        Assert.True(p[i] >= p[j]);
                    }
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void ToProbabilities_LogitsWithTemperature_EqualSoftmaxOfScaledLogits()
    {
        Gen.Select(Gen.Float[-10f, 10f].Array[2, 20], Gen.Double[0.1, 10.0]).Sample((z, t) =>
        {
            var p = HierarchicalDecoder.ToProbabilities(z, t, logits: true);

            var exp = z.Select(x => Math.Exp(x / t)).ToArray();
            for (var i = 0; i < z.Length; i++)
            {
                Assert.Equal(exp[i] / exp.Sum(), p[i], 1e-6);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void ToProbabilities_ProbabilitiesWithTemperature_ArePowerOneOverT()
    {
        Gen.Select(Gen.Float[0.001f, 1f].Array[2, 20], Gen.Double[0.1, 10.0]).Sample((q, t) =>
        {
            var p = HierarchicalDecoder.ToProbabilities(q, t, logits: false);
            var p1 = HierarchicalDecoder.ToProbabilities(q, 1.0, logits: false);

            var pow = q.Select(x => Math.Pow(x, 1 / t)).ToArray();
            for (var i = 0; i < q.Length; i++)
            {
                Assert.Equal(pow[i] / pow.Sum(), p[i], 1e-6);
                Assert.Equal(q[i] / q.Sum(x => (double)x), p1[i], 1e-6);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void DecodeBatchItem_EqualsDecodeOfTheSlice()
    {
        Gen.Select(RandomTrees.Tree, Gen.Int[1, 5], Gen.Int[0, int.MaxValue]).Sample((tree, n, seed) =>
        {
            var rng = new Random(seed);
            var batch = tree.Levels.Select(l => Enumerable.Range(0, n * l.Count).Select(_ => (float)((rng.NextDouble() * 16) - 8)).ToArray()).ToArray();
            var decoder = Decoder(tree, logits: true);

            for (var i = 0; i < n; i++)
            {
                var item = decoder.DecodeBatchItem(batch, i);
                var slice = decoder.Decode(batch.Select((b, l) => b.AsSpan(i * tree.Levels[l].Count, tree.Levels[l].Count).ToArray()).ToArray());
                Assert.Equal(slice.Path, item.Path);
                Assert.Equal(slice.Probabilities, item.Probabilities);
            }
        }, iter: 100);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Constructor_BadTemperature_Throws(double t)
    {
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();

        Assert.Throws<ArgumentOutOfRangeException>(() => new HierarchicalDecoder(tree, new DecodingSpec { Temperatures = [1, t] }));
    }

    [Fact]
    public void Constructor_UnknownPathScoringOrNaNThreshold_Throws()
    {
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();

        Assert.Throws<ArgumentOutOfRangeException>(() => new HierarchicalDecoder(tree, new DecodingSpec { PathScoring = "sum" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HierarchicalDecoder(tree, new DecodingSpec { Thresholds = [double.NaN] }));
    }

    [Fact]
    public void Decode_WrongNumberOrWidthOfOutputs_Throws()
    {
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();
        var decoder = new HierarchicalDecoder(tree);

        Assert.Throws<ArgumentException>(() => decoder.Decode([new float[2]]));
        Assert.Throws<ArgumentException>(() => decoder.Decode([new float[2], new float[4]]));
    }

    [Theory]
    [InlineData(float.NaN, true)]
    [InlineData(float.PositiveInfinity, true)]
    [InlineData(float.NaN, false)]
    public void Decode_NaNOrInfiniteOutput_Throws(float bad, bool logits)
    {
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();
        var decoder = new HierarchicalDecoder(tree, outputsAreLogits: logits);

        var e = Assert.Throws<ArgumentException>(() => decoder.Decode([[0.5f, 0.5f], [0.1f, bad, 0.2f, 0.3f, 0.4f]]));

        Assert.StartsWith("level 1 output holds NaN or infinite values", e.Message);
    }

    [Fact]
    public void Decode_NegativeInfinityLogit_IsAZeroProbability()
    {
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();
        var decoder = new HierarchicalDecoder(tree);

        var pred = decoder.Decode([[0f, float.NegativeInfinity], [1f, 2f, 0f, 0f, 0f]]);

        Assert.Equal(0f, pred.Probabilities[0][1]);
        Assert.Equal("metal/dent", pred.Path[1].Path);
    }

    [Fact]
    public void Decode_SameNameUnderTwoParents_ResultsShowThePath()
    {
        // metal{scratch, dent}, paint{bubble, run, scratch}: both scratches are shown by path, "dent" by name.
        var tree = FmaEdge.TestSupport.OnnxTestModels.SmallTree();
        var decoder = new HierarchicalDecoder(tree, new DecodingSpec { TopK = 3 });

        var pred = decoder.Decode([[0f, 3f], [2.5f, 2f, 0f, 0f, 3f]]);

        Assert.Equal(["paint", "paint/scratch"], pred.Path.Select(n => n.Label));
        Assert.Equal(["paint", "paint/scratch"], pred.Path.Select(n => n.Path));
        Assert.Equal(["paint/scratch", "metal/scratch", "dent"], pred.Levels[1].TopK.Select(s => s.Label));
        Assert.Equal(["Material", "Defect"], pred.Path.Select(n => n.LevelName));
        Assert.Equal("paint/scratch", pred.Coarse.Deepest!.Label);
    }
}
