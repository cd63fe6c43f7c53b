using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using FmaEdge.Training.Native;

namespace FmaEdge.Training.Tests;

/// <summary>The real dataset's tree and a few real images, loaded once per test run.</summary>
internal static class TestData
{
    private static readonly Lazy<LabeledDataset> TrainSet = new(() => DatasetLoader.ScanFolder(TestPaths.DatasetTrain));

    static TestData() => TorchNative.EnsureLoaded();

    public static LabeledDataset Train => TrainSet.Value;

    /// <summary>Bit-for-bit equality of two tensors.</summary>
    public static bool Same(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public static CategoryTree Tree => TrainSet.Value.Tree;

    /// <summary>A small real subset of a split with the train tree's class indices: up to <paramref name="perLeaf"/> per leaf.</summary>
    public static LabeledDataset Subset(string split, int perLeaf)
    {
        var ds = split == "train" ? Train : DatasetLoader.ScanFolder(Path.Combine(TestPaths.Dataset, split), Tree);
        var images = ds.Images.GroupBy(i => i.Leaf).SelectMany(g => g.OrderBy(i => i.Path, StringComparer.Ordinal).Take(perLeaf)).ToList();
        return ds with { Images = images };
    }
}
