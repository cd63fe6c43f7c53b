using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;

namespace FmaEdge.Evaluation.Tests.Datasets;

public sealed class FolderScanTests
{
    private static TaxonomyException ScanFails(DatasetFolder ds, CategoryTree? tree = null, IReadOnlyList<string>? names = null) =>
        Assert.Throws<TaxonomyException>(() => DatasetLoader.ScanFolder(ds.Root, tree, names));

    [Fact]
    public void ScanFolder_Depth1_InfersOneLevel()
    {
        using var ds = new DatasetFolder().Leaf("crack", 3).Leaf("blowhole", 2);

        var data = DatasetLoader.ScanFolder(ds.Root);

        Assert.Equal(1, data.Tree.Depth);
        Assert.Equal("L1", data.Tree.Levels[0].Name);
        // Classes come in ordinal folder order, so indices do not depend on the file system.
        Assert.Equal(["blowhole", "crack"], data.Tree.Leaves.Select(l => l.Path));
        Assert.Equal([2, 3], data.CountsPerLeaf());
        Assert.Equal(5, data.Images.Count);
        Assert.All(data.Images, img => Assert.Equal(data.Tree.Leaves[img.Leaf].Name, Path.GetFileName(Path.GetDirectoryName(img.Path))));
        Assert.Equal(Path.GetFullPath(ds.Root), data.Root);
    }

    [Fact]
    public void ScanFolder_Depth2_InfersParentsFromFolders()
    {
        using var ds = new DatasetFolder().Leaf("metal/scratch").Leaf("metal/dent").Leaf("paint/bubble").Leaf("paint/run", 1);

        var data = DatasetLoader.ScanFolder(ds.Root);

        var tree = data.Tree;
        Assert.Equal([2, 4], tree.LevelSizes);
        Assert.Equal(["L1", "L2"], tree.Levels.Select(l => l.Name));
        Assert.Equal(["metal", "paint"], tree.Levels[0].Classes.Select(c => c.Path));
        Assert.Equal(["metal/dent", "metal/scratch", "paint/bubble", "paint/run"], tree.Leaves.Select(c => c.Path));
        Assert.Equal([0, 0, 1, 1], tree.Leaves.Select(c => c.ParentIndex));
        Assert.Equal([2, 2, 2, 1], data.CountsPerLeaf());
    }

    [Fact]
    public void ScanFolder_Depth3WithLevelNames_UsesTheNames()
    {
        using var ds = new DatasetFolder()
            .Leaf("steel/oxide/scale").Leaf("steel/oxide/ash").Leaf("steel/texture/crazing")
            .Leaf("pcb/missing/open").Leaf("pcb/extra/short").Leaf("pcb/extra/spur");

        var data = DatasetLoader.ScanFolder(ds.Root, levelNames: ["DefectLocate", "LocationFlag", "FMA Defect"]);

        var tree = data.Tree;
        Assert.Equal(["DefectLocate", "LocationFlag", "FMA Defect"], tree.Levels.Select(l => l.Name));
        Assert.Equal([2, 4, 6], tree.LevelSizes);
        var leaf = tree.FindByPath("pcb/extra/spur")!;
        Assert.Equal(2, leaf.Level);
        Assert.Equal("pcb/extra", tree.Levels[1].Classes[leaf.ParentIndex].Path);
        Assert.Equal(12, data.Images.Count);
    }

    [Fact]
    public void ScanFolder_WrongNumberOfLevelNames_ReportsTheCounts()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");

        var e = ScanFails(ds, names: ["Only"]);

        Assert.Equal(["1 level names given but the folders are 2 levels deep"], e.Errors);
    }

    [Fact]
    public void ScanFolder_UnevenDepth_NamesTheOddFolder()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z").Leaf("c");

        var e = ScanFails(ds);

        Assert.Equal(["uneven depth: 1 leaf folder(s) at depth 1 but most are at depth 2, e.g. 'c'"], e.Errors);
    }

    [Fact]
    public void ScanFolder_EmptyClassFolder_IsReported()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Dir("b/empty").Leaf("b/z");

        var e = ScanFails(ds);

        var error = Assert.Single(e.Errors);
        Assert.StartsWith("class folder 'b/empty' holds no images (", error);
        Assert.Contains(".png", error);
    }

    [Fact]
    public void ScanFolder_LeafWithOnlyNonImageFiles_IsAnEmptyClass()
    {
        using var ds = new DatasetFolder().Leaf("x").Leaf("y").Text("z/readme.txt").Text("z/._hidden.png");

        var e = ScanFails(ds);

        Assert.StartsWith("class folder 'z' holds no images", Assert.Single(e.Errors));
    }

    [Fact]
    public void ScanFolder_HiddenFilesAndFolders_AreIgnored()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z").Dir(".git/objects").Text("a/x/._img000.png");

        var data = DatasetLoader.ScanFolder(ds.Root);

        Assert.Equal([2, 3], data.Tree.LevelSizes);
        Assert.Equal(6, data.Images.Count);
        Assert.DoesNotContain(data.Images, i => Path.GetFileName(i.Path).StartsWith('.'));
    }

    [Fact]
    public void ScanFolder_ImagesBesideClassFolders_AreReported()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");
        ds.Image("a/stray.png");

        var e = ScanFails(ds);

        Assert.Equal(["folder 'a' holds both images and class folders; images belong only in leaf folders"], e.Errors);
    }

    [Fact]
    public void ScanFolder_ImagesBesideTopLevelFolders_AreReportedWithTheRoot()
    {
        using var ds = new DatasetFolder().Leaf("a").Leaf("b");
        ds.Image("stray.png");

        var e = ScanFails(ds);

        Assert.Equal([$"folder '{Path.GetFullPath(ds.Root)}' holds both images and class folders; images belong only in leaf folders"], e.Errors);
    }

    [Fact]
    public void ScanFolder_NonImageFilesBesideClassFolders_AreAllowed()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z").Text("README.md").Text("a/notes.txt");

        var data = DatasetLoader.ScanFolder(ds.Root);

        Assert.Equal(6, data.Images.Count);
    }

    [Fact]
    public void ScanFolder_SingleClassLevel_IsAnErrorUnlessAllowed()
    {
        using var ds = new DatasetFolder().Leaf("only/x").Leaf("only/y");

        var e = ScanFails(ds);
        var data = DatasetLoader.ScanFolder(ds.Root, allowSingleClassLevels: true);

        Assert.Equal(["level 'L1' has a single class ('only'): a model cannot learn anything there; drop the level or add classes"], e.Errors);
        Assert.Equal([1, 2], data.Tree.LevelSizes);
    }

    [Fact]
    public void ScanFolder_RootWithoutClassFolders_IsReported()
    {
        using var ds = new DatasetFolder();
        ds.Image("a.png");

        var e = ScanFails(ds);

        Assert.Equal([$"'{Path.GetFullPath(ds.Root)}' has no class folders: expected ROOT/<level 1>/.../<leaf>/<images>"], e.Errors);
    }

    [Fact]
    public void ScanFolder_MissingRoot_IsReported()
    {
        using var ds = new DatasetFolder();
        var missing = Path.Combine(ds.Root, "nope");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.ScanFolder(missing));

        Assert.Equal([$"dataset folder '{missing}' does not exist"], e.Errors);
    }

    [Fact]
    public void ScanFolder_SeveralProblems_AreReportedTogether()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Dir("a/y").Leaf("b/z").Dir("b/w");
        ds.Image("b/stray.png");

        var e = ScanFails(ds);

        Assert.Equal(3, e.Errors.Count);
        Assert.Contains(e.Errors, x => x.StartsWith("class folder 'a/y' holds no images"));
        Assert.Contains(e.Errors, x => x.StartsWith("class folder 'b/w' holds no images"));
        Assert.Contains("folder 'b' holds both images and class folders; images belong only in leaf folders", e.Errors);
        Assert.Contains("a/y", e.Message);
    }

    [Fact]
    public void ScanFolder_SameNameUnderTwoParents_MakesTwoClassesLabelledByPath()
    {
        using var ds = new DatasetFolder().Leaf("metal/scratch").Leaf("metal/dent").Leaf("paint/scratch").Leaf("paint/run");

        var tree = DatasetLoader.ScanFolder(ds.Root).Tree;

        var scratches = tree.Leaves.Where(l => l.Name == "scratch").ToList();
        Assert.Equal(2, scratches.Count);
        Assert.NotEqual(scratches[0].Index, scratches[1].Index);
        // Duplicated names are shown by path so no result is ambiguous; unique names stay short.
        Assert.Equal(["metal/scratch", "paint/scratch"], scratches.Select(s => s.Label));
        Assert.Equal("dent", tree.FindByPath("metal/dent")!.Label);
        Assert.Null(tree.FindLeaf("scratch"));
        Assert.Equal(scratches[1].Index, tree.FindLeaf("paint/scratch"));
    }

    [Fact]
    public void ScanFolder_WithTree_UsesTheTreeIndices()
    {
        using var train = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");
        using var val = new DatasetFolder().Leaf("b/z", 1).Leaf("a/y", 1);
        var tree = DatasetLoader.ScanFolder(train.Root).Tree;

        var data = DatasetLoader.ScanFolder(val.Root, tree);

        Assert.Same(tree, data.Tree);
        Assert.Equal(2, data.Images.Count);
        Assert.All(data.Images, i => Assert.EndsWith(tree.Leaves[i.Leaf].Path, Path.GetDirectoryName(i.Path)!.Replace('\\', '/')));
        Assert.Equal([0, 1, 1], data.CountsPerLeaf());
    }

    [Fact]
    public void ScanFolder_WithTree_FolderNotInTreeIsReported()
    {
        using var train = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");
        using var val = new DatasetFolder().Leaf("a/x").Leaf("b/new").Leaf("c/z");
        var tree = DatasetLoader.ScanFolder(train.Root).Tree;

        var e = ScanFails(val, tree);

        Assert.Equal(["folder 'b/new' is not a leaf of the tree", "folder 'c/z' is not a leaf of the tree"], e.Errors);
    }

    [Fact]
    public void ScanFolder_WithTreeOfOtherDepth_IsReported()
    {
        using var train = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");
        using var flat = new DatasetFolder().Leaf("x").Leaf("y");
        var tree = DatasetLoader.ScanFolder(train.Root).Tree;

        var e = ScanFails(flat, tree);

        Assert.Equal(["the folders are 1 levels deep but the tree has 2 levels"], e.Errors);
    }

    [Fact]
    public void ScanFolder_SymbolicLinkLoop_IsReportedNotFollowedForever()
    {
        using var ds = new DatasetFolder().Leaf("a/x").Leaf("a/y").Leaf("b/z");
        Directory.CreateSymbolicLink(Path.Combine(ds.Root, "a", "x", "loop"), ds.Root);
        // a/x now holds a folder too, so its images are also "beside class folders"; the loop must be named.

        var e = ScanFails(ds);

        Assert.Contains(e.Errors, x => x.EndsWith($"is more than {DatasetLoader.MaxFolderDepth} levels deep (a symbolic link loop?)", StringComparison.Ordinal));
    }
}
