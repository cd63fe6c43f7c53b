using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Evaluation.Datasets;

/// <summary>One labelled image: a file and the index of its leaf class.</summary>
public sealed record LabeledImage(string Path, int Leaf);

/// <summary>A category tree and the images labelled with its leaves. Immutable.</summary>
public sealed record LabeledDataset(CategoryTree Tree, IReadOnlyList<LabeledImage> Images, string Root)
{
    /// <summary>Images per leaf, in leaf order.</summary>
    public int[] CountsPerLeaf()
    {
        var counts = new int[Tree.Leaves.Count];
        foreach (var img in Images)
        {
            counts[img.Leaf]++;
        }

        return counts;
    }

    /// <summary>A reproducible split stratified by leaf: about <paramref name="fraction"/> of each leaf's
    /// images go to the second set; a leaf with two or more images keeps at least one in each set.</summary>
    public (LabeledDataset Train, LabeledDataset Val) SplitStratified(double fraction, int seed)
    {
        if (!(fraction > 0 && fraction < 1))  // written so that NaN fails too
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "the validation fraction must be between 0 and 1");
        }

        var train = new List<LabeledImage>();
        var val = new List<LabeledImage>();
        foreach (var group in Images.GroupBy(i => i.Leaf).OrderBy(g => g.Key))
        {
            // Order by path first so the split depends only on the files and the seed, not on scan order.
            // HashCode.Combine is randomised per process, so it must not seed this: the split has to be the
            // same in every run (the trainer's val set, resumed runs, reports). Seeded System.Random is stable.
            var rng = new Random(unchecked((seed * 1_000_003) + group.Key));
            var items = group.OrderBy(i => i.Path, StringComparer.Ordinal).OrderBy(_ => rng.Next()).ToList();
            // Clamped so that a leaf with two or more images keeps at least one on each side, whatever the fraction.
            var nVal = items.Count < 2 ? 0 : Math.Clamp((int)Math.Round(items.Count * fraction), 1, items.Count - 1);
            val.AddRange(items.Take(nVal));
            train.AddRange(items.Skip(nVal));
        }

        return (this with { Images = train }, this with { Images = val });
    }
}
