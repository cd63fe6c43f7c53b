using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Evaluation.Tests.Datasets;

public sealed class ManifestCsvTests : IDisposable
{
    // metal{scratch, dent}, paint{bubble, run, scratch}: "scratch" is ambiguous, "metal/scratch" is not.
    private readonly CategoryTree _tree = OnnxTestModels.SmallTree();
    private readonly DatasetFolder _ds = new();

    public ManifestCsvTests()
    {
        foreach (var name in new[] { "a.png", "b.png", "c.png", "d.png", "e.png", "sub/f.png" })
        {
            _ds.Image("images/" + name);
        }
    }

    public void Dispose() => _ds.Dispose();

    private string Csv(string text)
    {
        var path = Path.Combine(_ds.Root, "labels.csv");
        File.WriteAllText(path, text);
        return path;
    }

    private const string AllLeaves = """
        images/a.png,metal/scratch
        images/b.png,dent
        images/c.png,bubble
        images/d.png,run
        images/e.png,paint/scratch

        """;

    [Fact]
    public void LoadManifest_WithHeader_ReadsLeavesByNameOrPath()
    {
        var data = DatasetLoader.LoadManifest(Csv("path,leaf\n" + AllLeaves), _tree);

        Assert.Equal(["metal/scratch", "metal/dent", "paint/bubble", "paint/run", "paint/scratch"],
            data.Images.Select(i => _tree.Leaves[i.Leaf].Path));
        Assert.Equal([1, 1, 1, 1, 1], data.CountsPerLeaf());
        Assert.Same(_tree, data.Tree);
        Assert.Equal(Path.GetFullPath(_ds.Root), data.Root);
    }

    [Fact]
    public void LoadManifest_WithoutHeader_CommentsBlankLinesQuotesAndAbsolutePaths_AreHandled()
    {
        var absolute = Path.Combine(_ds.Root, "images", "sub", "f.png");
        var data = DatasetLoader.LoadManifest(Csv($"""
            # exported from the labelling tool

            "images/a.png","metal/scratch"
             images/b.png , dent
            {absolute},bubble
            images/d.png,run
            images/e.png,paint/scratch
            """), _tree);

        Assert.Equal(5, data.Images.Count);
        Assert.Equal(Path.Combine(_ds.Root, "images/a.png"), data.Images[0].Path);
        Assert.Equal(Path.Combine(_ds.Root, "images/b.png"), data.Images[1].Path);
        Assert.Equal(absolute, data.Images[2].Path);
        Assert.All(data.Images, i => Assert.True(File.Exists(i.Path)));
    }

    [Fact]
    public void LoadManifest_UnknownLeaf_IsReportedWithTheLine()
    {
        var csv = Csv(AllLeaves + "images/sub/f.png,wood\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal([$"{csv}:6: unknown leaf 'wood'"], e.Errors);
    }

    [Fact]
    public void LoadManifest_AmbiguousLeafName_AsksForThePath()
    {
        var csv = Csv("path,leaf\n" + AllLeaves + "images/sub/f.png,scratch\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal([$"{csv}:7: leaf 'scratch' is ambiguous; name it by path (metal/scratch or paint/scratch)"], e.Errors);
    }

    [Fact]
    public void LoadManifest_EmptyLeafOrMissingComma_IsReported()
    {
        var csv = Csv(AllLeaves + "images/sub/f.png,\nimages/sub/f.png\n,dent\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal(
        [
            $"{csv}:6: the leaf is empty",
            $"{csv}:7: expected 'path,leaf'",
            $"{csv}:8: expected 'path,leaf'",
        ], e.Errors);
    }

    [Fact]
    public void LoadManifest_NonLeafClassAsLeaf_IsUnknown()
    {
        var csv = Csv(AllLeaves + "images/sub/f.png,metal\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal([$"{csv}:6: unknown leaf 'metal'"], e.Errors);
    }

    [Fact]
    public void LoadManifest_MissingImage_IsReported()
    {
        var csv = Csv(AllLeaves + "images/gone.png,dent\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal([$"{csv}:6: image 'images/gone.png' does not exist"], e.Errors);
    }

    [Fact]
    public void LoadManifest_LeafWithoutImages_IsAnEmptyClass()
    {
        var csv = Csv("images/a.png,metal/scratch\nimages/b.png,dent\nimages/c.png,bubble\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal(["leaf 'paint/run' has no images in the manifest", "leaf 'paint/scratch' has no images in the manifest"], e.Errors);
    }

    [Fact]
    public void LoadManifest_SeveralProblems_AreReportedTogether()
    {
        var csv = Csv(AllLeaves + "images/a.png,wood\nimages/b.png,scratch\n");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(csv, _tree));

        Assert.Equal(2, e.Errors.Count);
        Assert.StartsWith($"{csv}:6: unknown leaf", e.Errors[0]);
        Assert.StartsWith($"{csv}:7: leaf 'scratch' is ambiguous", e.Errors[1]);
    }

    [Fact]
    public void LoadManifest_MissingOrUnreadableFile_IsReported()
    {
        var missing = Path.Combine(_ds.Root, "none.csv");
        var dir = Directory.CreateDirectory(Path.Combine(_ds.Root, "dir.csv")).FullName;

        var e1 = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(missing, _tree));
        var e2 = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadManifest(dir, _tree));

        Assert.StartsWith($"cannot read manifest '{missing}': ", Assert.Single(e1.Errors));
        Assert.StartsWith($"cannot read manifest '{dir}': ", Assert.Single(e2.Errors));
    }
}
