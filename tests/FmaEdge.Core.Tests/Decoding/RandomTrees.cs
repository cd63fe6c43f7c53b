using CsCheck;
using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Core.Tests.Decoding;

/// <summary>A random tree with one random score table per level.</summary>
internal sealed record DecodeCase(CategoryTree Tree, float[][] Scores)
{
    public override string ToString() =>
        Tree + " scores " + string.Join(" | ", Scores.Select(s => string.Join(",", s.Select(x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))));
}

/// <summary>CsCheck generators for random trees (depth 1-4, 1-4 roots, 1-3 children per node) and tables.</summary>
internal static class RandomTrees
{
    /// <summary>Children names repeat under different parents ("c0", "c1"), so classes are told apart by path.</summary>
    public static CategoryTree Build(int depth, int roots, int[] branching)
    {
        var doc = new TaxonomyDocument();
        var next = 0;
        var parents = new List<string>();
        for (var l = 0; l < depth; l++)
        {
            var level = new TaxonomyDocument.LevelDoc { Name = $"Level{l}" };
            var paths = new List<string>();
            if (l == 0)
            {
                for (var i = 0; i < roots; i++)
                {
                    level.Classes.Add(new TaxonomyDocument.ClassDoc { Name = $"r{i}" });
                    paths.Add($"r{i}");
                }
            }
            else
            {
                foreach (var parent in parents)
                {
                    var n = branching[next++ % branching.Length];
                    for (var i = 0; i < n; i++)
                    {
                        level.Classes.Add(new TaxonomyDocument.ClassDoc { Name = $"c{i}", Parent = parent });
                        paths.Add($"{parent}/c{i}");
                    }
                }
            }

            doc.Levels.Add(level);
            parents = paths;
        }

        return TaxonomyBuilder.Build(doc, allowSingleClassLevels: true);
    }

    public static readonly Gen<CategoryTree> Tree =
        Gen.Select(Gen.Int[1, 4], Gen.Int[1, 4], Gen.Int[1, 3].Array[40], Build);

    /// <summary>Per-level probability tables (each sums to 1; some entries may be exactly 0).</summary>
    public static readonly Gen<DecodeCase> Probabilities = Tree.SelectMany(tree =>
        Gen.Frequency((4, Gen.Float[0.0001f, 1f]), (1, Gen.Const(0f))).Array[tree.LevelSizes.Sum()]
            .Select(flat => new DecodeCase(tree, Split(tree, flat, normalise: true))));

    /// <summary>Per-level logits in -10..10.</summary>
    public static readonly Gen<DecodeCase> Logits = Tree.SelectMany(tree =>
        Gen.Float[-10f, 10f].Array[tree.LevelSizes.Sum()]
            .Select(flat => new DecodeCase(tree, Split(tree, flat, normalise: false))));

    private static float[][] Split(CategoryTree tree, float[] flat, bool normalise)
    {
        var result = new float[tree.Depth][];
        var offset = 0;
        for (var l = 0; l < tree.Depth; l++)
        {
            var n = tree.Levels[l].Count;
            var row = flat.AsSpan(offset, n).ToArray();
            offset += n;
            if (normalise)
            {
                var sum = row.Sum();
                for (var i = 0; i < n; i++)
                {
                    row[i] = sum > 0 ? row[i] / sum : 1f / n;
                }
            }

            result[l] = row;
        }

        return result;
    }
}
