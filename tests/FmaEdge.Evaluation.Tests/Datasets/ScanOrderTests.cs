using FmaEdge.Evaluation.Datasets;

namespace FmaEdge.Evaluation.Tests.Datasets;

/// <summary>A seeded run must see its images in the same order on every machine, whatever order the file system
/// lists them in (ext4 lists by hash, tmpfs newest first, others by name).</summary>
public sealed class ScanOrderTests
{
    // Names whose culture-aware and ordinal orders differ (case, underscore, accents, digits).
    private static readonly string[] Names = ["b.png", "B.png", "a10.png", "a9.png", "_x.png", "Z.png", "\u00e4.png", "ae.png"];

    [Fact]
    public void ScanFolder_SameFilesCreatedInOppositeOrders_SameImagesInOrdinalOrderAndSameSplit()
    {
        using var forward = Build(Names, ["metal/dent", "metal/scratch", "paint/run"]);
        using var backward = Build(Names.Reverse().ToArray(), ["paint/run", "metal/scratch", "metal/dent"]);

        var a = DatasetLoader.ScanFolder(forward.Root);
        var b = DatasetLoader.ScanFolder(backward.Root);

        var relA = a.Images.Select(i => (Path.GetRelativePath(a.Root, i.Path), i.Leaf)).ToList();
        var relB = b.Images.Select(i => (Path.GetRelativePath(b.Root, i.Path), i.Leaf)).ToList();
        Assert.Equal(relA, relB);
        Assert.Equal(relA.Select(r => r.Item1).Order(StringComparer.Ordinal), relA.Select(r => r.Item1));
        Assert.Equal(a.Tree.Leaves.Select(l => l.Path), b.Tree.Leaves.Select(l => l.Path));
        var (_, valA) = a.SplitStratified(0.25, seed: 4);
        var (_, valB) = b.SplitStratified(0.25, seed: 4);
        Assert.Equal(valA.Images.Select(i => Path.GetRelativePath(a.Root, i.Path)), valB.Images.Select(i => Path.GetRelativePath(b.Root, i.Path)));
    }

    private static DatasetFolder Build(string[] names, string[] leaves)
    {
        var ds = new DatasetFolder();
        foreach (var leaf in leaves)
        {
            ds.Dir(leaf);
            foreach (var name in names)
            {
                ds.Image($"{leaf}/{name}");
            }
        }

        return ds;
    }
}
