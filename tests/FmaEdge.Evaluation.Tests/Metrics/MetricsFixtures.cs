using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Evaluation.Tests.Metrics;

/// <summary>Small hand-checkable trees and predictions built directly (not through the decoder), so metric tests
/// check the metrics alone.</summary>
internal static class MetricsFixtures
{
    /// <summary>L1: A, B. L2: A/a1, A/a2, B/b1. L3 leaves: 0 A/a1/x, 1 A/a1/y, 2 A/a2/z, 3 B/b1/u, 4 B/b1/v.</summary>
    public static CategoryTree SmallTree() => TaxonomyBuilder.Build(new TaxonomyDocument
    {
        Levels =
        [
            new() { Name = "L1", Classes = [new() { Name = "A" }, new() { Name = "B" }] },
            new() { Name = "L2", Classes = [new() { Name = "a1", Parent = "A" }, new() { Name = "a2", Parent = "A" }, new() { Name = "b1", Parent = "B" }] },
            new()
            {
                Name = "L3",
                Classes =
                [
                    new() { Name = "x", Parent = "A/a1" }, new() { Name = "y", Parent = "A/a1" }, new() { Name = "z", Parent = "A/a2" },
                    new() { Name = "u", Parent = "B/b1" }, new() { Name = "v", Parent = "B/b1" },
                ],
            },
        ],
    });

    /// <summary>A random tree with 2..4 levels, 2..4 top classes and 1..3 children per node.</summary>
    public static CategoryTree RandomTree(Random rng)
    {
        var depth = rng.Next(2, 5);
        var doc = new TaxonomyDocument();
        var parents = new List<string>();
        for (var l = 0; l < depth; l++)
        {
            var level = new TaxonomyDocument.LevelDoc { Name = $"L{l + 1}" };
            var next = new List<string>();
            if (l == 0)
            {
                for (var i = rng.Next(2, 5); i > 0; i--)
                {
                    level.Classes.Add(new() { Name = $"c{i}" });
                    next.Add($"c{i}");
                }
            }
            else
            {
                foreach (var p in parents)
                {
                    for (var i = rng.Next(1, 4); i > 0; i--)
                    {
                        level.Classes.Add(new() { Name = $"c{i}", Parent = p });
                        next.Add($"{p}/c{i}");
                    }
                }
            }

            doc.Levels.Add(level);
            parents = next;
        }

        return TaxonomyBuilder.Build(doc, allowSingleClassLevels: true);
    }

    /// <summary>Random per-level probability tables (rows sum to 1) for <paramref name="tree"/>.</summary>
    public static float[][] RandomProbabilities(CategoryTree tree, Random rng, double sharpness = 3)
    {
        return tree.Levels.Select(level =>
        {
            var e = Enumerable.Range(0, level.Count).Select(_ => Math.Exp(sharpness * rng.NextDouble() * rng.NextDouble() * 4)).ToArray();
            var s = e.Sum();
            return e.Select(v => (float)(v / s)).ToArray();
        }).ToArray();
    }

    /// <summary>A prediction made by hand: argmaxes from <paramref name="probs"/>, the given path leaf, coarse
    /// depth and path confidences.</summary>
    public static HierarchicalPrediction Prediction(CategoryTree tree, float[][] probs, int pathLeaf, int coarseDepth = -1, float[]? pathConfidence = null)
    {
        var depth = tree.Depth;
        coarseDepth = coarseDepth < 0 ? depth : coarseDepth;
        var levels = new LevelPrediction[depth];
        var argmax = new int[depth];
        for (var l = 0; l < depth; l++)
        {
            var best = 0;
            for (var i = 1; i < probs[l].Length; i++)
            {
                best = probs[l][i] > probs[l][best] ? i : best;
            }

            argmax[l] = best;
            var c = tree.Levels[l].Classes[best];
            levels[l] = new LevelPrediction(l, tree.Levels[l].Name, best, c.Label, c.Path, probs[l][best], []);
        }

        var path = new NodeAnswer[depth];
        for (var l = 0; l < depth; l++)
        {
            var c = tree.Levels[l].Classes[tree.AncestorOfLeaf(pathLeaf, l)];
            path[l] = new NodeAnswer(l, tree.Levels[l].Name, c.Index, c.Label, c.Path, pathConfidence?[l] ?? 1f);
        }

        return new HierarchicalPrediction(levels, path, new CoarseAnswer(coarseDepth, path.Take(coarseDepth).ToArray()),
            tree.IsConsistentPath(argmax), probs);
    }

    /// <summary>One-hot-ish probabilities: the named class gets <paramref name="p"/>, the rest share the remainder.</summary>
    public static float[] Peak(int classes, int index, float p = 0.8f)
    {
        var row = Enumerable.Repeat((1 - p) / (classes - 1), classes).ToArray();
        row[index] = p;
        return row;
    }
}
