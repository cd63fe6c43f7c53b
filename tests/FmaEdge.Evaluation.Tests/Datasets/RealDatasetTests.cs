using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Evaluation.Tests.Datasets;

/// <summary>The real defect set (see its README): 3 levels, 3/7/21 classes, 4146 train and 859 val images.</summary>
public sealed class RealDatasetTests
{
    private static readonly string[] LevelNames = ["DefectLocate", "LocationFlag", "FMA Defect"];

    [Fact]
    public void ScanFolder_RealTrain_HasThreeLevelsOf3And7And21Classes()
    {
        var data = DatasetLoader.ScanFolder(TestPaths.DatasetTrain, levelNames: LevelNames);

        Assert.Equal(3, data.Tree.Depth);
        Assert.Equal([3, 7, 21], data.Tree.LevelSizes);
        Assert.Equal(LevelNames, data.Tree.Levels.Select(l => l.Name));
        Assert.Equal(4146, data.Images.Count);
        Assert.Equal(["magnetic_tile", "pcb", "steel_strip"], data.Tree.Levels[0].Classes.Select(c => c.Name));
        Assert.Equal("steel_strip/oxide_scale/red_iron_sheet", data.Tree.Leaves[data.Tree.FindLeaf("red_iron_sheet")!.Value].Path);
        var counts = data.CountsPerLeaf();
        Assert.Equal(36, counts.Min());
        Assert.Equal(388, counts.Max());
        Assert.All(data.Images, i => Assert.True(DatasetLoader.IsImageFile(i.Path)));
        // No name repeats in this tree, so every label is the bare name.
        Assert.All(data.Tree.Levels.SelectMany(l => l.Classes), c => Assert.Equal(c.Name, c.Label));
    }

    [Fact]
    public void ScanFolder_RealValWithTrainTree_GivesTheSameIndices()
    {
        var train = DatasetLoader.ScanFolder(TestPaths.DatasetTrain);

        var val = DatasetLoader.ScanFolder(TestPaths.DatasetVal, train.Tree);
        var valOwn = DatasetLoader.ScanFolder(TestPaths.DatasetVal);

        Assert.Equal(859, val.Images.Count);
        Assert.All(val.Images, i =>
            Assert.Equal(train.Tree.Leaves[i.Leaf].Path, Path.GetRelativePath(TestPaths.DatasetVal, Path.GetDirectoryName(i.Path)!).Replace('\\', '/')));
        Assert.Equal(TaxonomyLoader.ToJson(train.Tree), TaxonomyLoader.ToJson(valOwn.Tree));
        Assert.Equal(val.Images, valOwn.Images);
        Assert.All(val.CountsPerLeaf(), c => Assert.True(c > 0));
    }
}
