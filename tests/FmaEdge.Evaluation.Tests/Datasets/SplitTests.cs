using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Evaluation.Tests.Datasets;

public sealed class SplitTests
{
    private static readonly Lazy<LabeledDataset> RealTrain = new(() => DatasetLoader.ScanFolder(TestPaths.DatasetTrain));

    /// <summary>Images with the given count per leaf of the small tree (paths need not exist: the split is pure).</summary>
    private static LabeledDataset Synthetic(params int[] perLeaf)
    {
        var tree = OnnxTestModels.SmallTree();
        var images = perLeaf.SelectMany((n, leaf) => Enumerable.Range(0, n).Select(i => new LabeledImage($"/data/{leaf}/img{i:D4}.png", leaf))).ToList();
        return new LabeledDataset(tree, images, "/data");
    }

    [Fact]
    public void SplitStratified_SameSeed_GivesTheSameSplitWhateverTheInputOrder()
    {
        var data = RealTrain.Value;
        var shuffled = data with { Images = data.Images.OrderBy(i => i.Path.GetHashCode(StringComparison.Ordinal)).ToList() };

        var (t1, v1) = data.SplitStratified(0.2, seed: 42);
        var (t2, v2) = shuffled.SplitStratified(0.2, seed: 42);

        Assert.Equal(v1.Images.Select(i => i.Path).Order(), v2.Images.Select(i => i.Path).Order());
        Assert.Equal(t1.Images.Select(i => i.Path).Order(), t2.Images.Select(i => i.Path).Order());
    }

    [Fact]
    public void SplitStratified_OtherSeed_GivesAnotherSplit()
    {
        var data = RealTrain.Value;

        var (_, v1) = data.SplitStratified(0.2, seed: 1);
        var (_, v2) = data.SplitStratified(0.2, seed: 2);

        Assert.NotEqual(v1.Images.Select(i => i.Path).Order(), v2.Images.Select(i => i.Path).Order());
        Assert.Equal(v1.Images.Count, v2.Images.Count);
    }

    [Fact]
    public void SplitStratified_IsStableAcrossProcesses()
    {
        // Pinned on purpose: the split must be identical in every process and run (resumed training, reports).
        // A per-process random seed (e.g. HashCode.Combine) passes every in-process test but fails this one.
        var data = Synthetic(10, 10, 10, 10, 10);

        var (_, val) = data.SplitStratified(0.2, seed: 7);

        Assert.Equal(
            ExpectedStableSplit,
            val.Images.Select(i => Path.GetFileNameWithoutExtension(i.Path)[3..] + "@" + i.Leaf));
    }

    // Recorded once from this implementation (System.Random seeded with seed*1000003+leaf, which .NET keeps stable).
    private static readonly string[] ExpectedStableSplit =
        ["0006@0", "0001@0", "0009@1", "0002@1", "0006@2", "0005@2", "0005@3", "0001@3", "0005@4", "0009@4"];

    [Fact]
    public void SplitStratified_RealData_IsDisjointCompleteAndStratified()
    {
        var data = RealTrain.Value;

        var (train, val) = data.SplitStratified(0.2, seed: 3);

        var trainPaths = train.Images.Select(i => i.Path).ToHashSet();
        var valPaths = val.Images.Select(i => i.Path).ToHashSet();
        Assert.Empty(trainPaths.Intersect(valPaths));
        Assert.Equal(data.Images.Select(i => i.Path).Order(), trainPaths.Concat(valPaths).Order());
        Assert.Equal(data.Images.Count, train.Images.Count + val.Images.Count);
        var all = data.CountsPerLeaf();
        var tc = train.CountsPerLeaf();
        var vc = val.CountsPerLeaf();
        for (var leaf = 0; leaf < all.Length; leaf++)
        {
            Assert.True(tc[leaf] >= 1 && vc[leaf] >= 1, $"leaf {leaf}: {tc[leaf]} train, {vc[leaf]} val");
            Assert.Equal((int)Math.Round(all[leaf] * 0.2), vc[leaf]);
        }

        Assert.All(val.Images, i => Assert.Contains(i, data.Images));
        Assert.Same(data.Tree, val.Tree);
    }

    [Fact]
    public void SplitStratified_SmallLeaves_KeepOneOnEachSideFromTwoImages()
    {
        var data = Synthetic(1, 2, 3, 0, 40);

        var (train, val) = data.SplitStratified(0.1, seed: 5);

        Assert.Equal([1, 1, 2, 0, 36], train.CountsPerLeaf());
        Assert.Equal([0, 1, 1, 0, 4], val.CountsPerLeaf());
    }

    [Fact]
    public void SplitStratified_LargeFraction_StillLeavesTrainingImagesInEveryLeaf()
    {
        var data = Synthetic(2, 3, 10, 1, 20);

        var (train, val) = data.SplitStratified(0.9, seed: 5);

        Assert.Equal([1, 1, 1, 1, 2], train.CountsPerLeaf());
        Assert.Equal([1, 2, 9, 0, 18], val.CountsPerLeaf());
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.5)]
    [InlineData(double.NaN)]
    public void SplitStratified_FractionOutsideZeroToOne_Throws(double fraction)
    {
        var data = Synthetic(4, 4, 4, 4, 4);

        Assert.Throws<ArgumentOutOfRangeException>(() => data.SplitStratified(fraction, 1));
    }
}
