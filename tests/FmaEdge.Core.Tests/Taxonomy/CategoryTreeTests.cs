using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Core.Tests.Taxonomy;

public sealed class CategoryTreeTests
{
    private static readonly Lazy<CategoryTree> Real = new(() => DatasetLoader.ScanFolder(TestPaths.DatasetTrain).Tree);

    [Fact]
    public void PathOfLeaf_EveryLeaf_IsAConsistentPathEndingAtTheLeaf()
    {
        var tree = Real.Value;

        for (var leaf = 0; leaf < tree.Leaves.Count; leaf++)
        {
            var path = tree.PathOfLeaf(leaf);
            Assert.True(tree.IsConsistentPath(path));
            Assert.Equal(leaf, path[^1]);
            Assert.Equal(tree.Leaves[leaf].Path, tree.Levels[1].Classes[path[1]].Path + "/" + tree.Leaves[leaf].Name);
            for (var l = 0; l < tree.Depth; l++)
            {
                Assert.Equal(path[l], tree.AncestorOfLeaf(leaf, l));
                Assert.True(tree.IsAncestor(l, path[l], tree.Depth - 1, leaf));
                Assert.Contains(l + 1 < tree.Depth ? path[l + 1] : -1, l + 1 < tree.Depth ? tree.ChildrenOf(l, path[l]) : [-1]);
            }
        }
    }

    [Fact]
    public void IsConsistentPath_ChildUnderTheWrongParent_IsFalse()
    {
        var tree = Real.Value;
        var leaf = tree.FindLeaf("crack")!.Value;
        var path = tree.PathOfLeaf(leaf).ToArray();

        path[0] = (path[0] + 1) % tree.Levels[0].Count;

        Assert.False(tree.IsConsistentPath(path));
        Assert.False(tree.IsAncestor(0, path[0], 2, leaf));
    }

    [Fact]
    public void LcaHeight_CountsLevelsUpToTheCommonAncestor()
    {
        var tree = Real.Value;
        int Leaf(string name) => tree.FindLeaf(name)!.Value;

        Assert.Equal(0, tree.LcaHeight(Leaf("crack"), Leaf("crack")));
        Assert.Equal(1, tree.LcaHeight(Leaf("crack"), Leaf("break")));
        Assert.Equal(2, tree.LcaHeight(Leaf("crack"), Leaf("blowhole")));
        Assert.Equal(3, tree.LcaHeight(Leaf("crack"), Leaf("open")));
    }

    [Fact]
    public void LeafToLevelMatrix_HasOneOneInEveryRowAtTheAncestor()
    {
        var tree = Real.Value;

        for (var l = 0; l < tree.Depth; l++)
        {
            var m = tree.LeafToLevelMatrix(l);
            Assert.Equal(tree.Leaves.Count, m.GetLength(0));
            Assert.Equal(tree.Levels[l].Count, m.GetLength(1));
            for (var leaf = 0; leaf < tree.Leaves.Count; leaf++)
            {
                for (var c = 0; c < tree.Levels[l].Count; c++)
                {
                    Assert.Equal(c == tree.AncestorOfLeaf(leaf, l) ? 1f : 0f, m[leaf, c]);
                }
            }
        }
    }

    [Fact]
    public void Label_DisplayNameCollidingWithAName_ShowsBothByPath()
    {
        var tree = TaxonomyBuilder.Build(new TaxonomyDocument
        {
            Levels =
            [
                new() { Name = "A", Classes = [new() { Name = "x" }, new() { Name = "y" }] },
                new()
                {
                    Name = "B",
                    Classes =
                    [
                        new() { Name = "crack", Parent = "x" },
                        new() { Name = "split", Parent = "y", Display = "crack" },
                        new() { Name = "dent", Parent = "y", Display = "Dent (deep)" },
                    ],
                },
            ],
        });

        Assert.Equal(["x/crack", "y/split", "Dent (deep)"], tree.Leaves.Select(l => l.Label));
        Assert.Equal("Dent (deep)", tree.Leaves[2].DisplayName);
        Assert.Equal("A(2) -> B(3)", tree.ToString());
    }

    [Fact]
    public void FindLeaf_ByPathOrUniqueName_AndNullOtherwise()
    {
        var tree = OnnxTestModels.SmallTree();

        Assert.Equal(1, tree.FindLeaf("dent"));
        Assert.Equal(1, tree.FindLeaf("metal/dent"));
        Assert.Equal(0, tree.FindLeaf("metal/scratch"));
        Assert.Equal(4, tree.FindLeaf("paint/scratch"));
        Assert.Null(tree.FindLeaf("scratch"));
        Assert.Null(tree.FindLeaf("metal"));
        Assert.Null(tree.FindLeaf("wood"));
        Assert.Equal("paint", tree.FindByPath("paint")!.Name);
        Assert.Null(tree.FindByPath("paint/dent"));
    }
}
