using FmaEdge.Core.Contract;
using FmaEdge.TestSupport;
using FmaEdge.Training.Export;
using FmaEdge.Training.Models;
using Onnx;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class ExportTests
{
    [Theory]
    [InlineData("flat")]
    [InlineData("independent")]
    [InlineData("shared")]
    public void Export_EveryHead_MatchesTorchSharpOnRealImagesAndPassesContract(string head)
    {
        var tree = TestData.Tree;
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = head, ImageSize = 64, HeadHidden = 48 }, tree);
        Perturb(model);
        using var dir = new TempFolder("export");
        var path = Path.Combine(dir.Path, "model.onnx");
        var images = TestPaths.SampleImages("val", 1);

        var result = OnnxExporter.Export(model, tree, new ExportDescription { Loss = "ce" }, path, images);

        Assert.Equal(images.Count, result.VerifiedImages);
        Assert.InRange(result.MaxAbsDifference, 0, 1e-4);
        var report = ModelContract.Validate(path);
        Assert.True(report.IsValid, string.Join("; ", report.Violations));
        Assert.Equal(head == "flat" ? PathScorings.Leaf : PathScorings.Product, report.Model!.Manifest.Decoding.PathScoring);
        Assert.Equal(64, report.Model.Manifest.Input.Height);
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Export_ToleranceImpossible_FailsAndLeavesNoFile()
    {
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 }, TestData.Tree);
        Perturb(model);
        using var dir = new TempFolder("export");
        var path = Path.Combine(dir.Path, "model.onnx");

        // A negative tolerance no real export can meet: the check itself must be able to fail.
        Assert.Throws<ExportVerificationException>(() =>
            OnnxExporter.Export(model, TestData.Tree, new ExportDescription(), path, TestPaths.SampleImages("val", 1).Take(2).ToList(), tolerance: -1));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Export_ShippedModelWeights_ReproducesTheShippedGraphExactly()
    {
        // The exporter today, fed the weights of the model in models/ (made by an earlier exporter), must write the
        // same graph node for node and byte for byte: exports are unchanged for the same weights.
        var shipped = ModelContract.Validate(TestPaths.DemoModel);
        Assert.True(shipped.IsValid, string.Join("; ", shipped.Violations));
        var m = shipped.Model!;
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestPaths.DemoModel));
        var initializers = proto.Graph.Initializer.ToDictionary(i => i.Name);
        var config = new ModelConfig { Model = m.Manifest.Model.Architecture, Head = m.Manifest.Model.Head, ImageSize = m.Manifest.Input.Height };
        using var model = new HierarchicalClassifier(config, m.Tree);
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                // Linear weights are stored transposed, as name + "_t".
                var plain = initializers.TryGetValue(name, out var t);
                using var stored = FloatTensor(plain ? t! : initializers[name + "_t"]);
                using var value = plain ? stored.alias() : stored.t();
                p.copy_(value.reshape(p.shape));
            }
        }

        var rebuilt = OnnxExporter.BuildModel(model, OnnxExporter.BuildManifest(model, m.Tree, new ExportDescription()));

        Assert.Equal(proto.Graph.Node.Count, rebuilt.Graph.Node.Count);
        Assert.Equal(proto.Graph.Initializer.Select(i => i.Name), rebuilt.Graph.Initializer.Select(i => i.Name));
        Assert.True(proto.Graph.Equals(rebuilt.Graph), "the rebuilt graph differs from the shipped one");
        Assert.Equal(proto.OpsetImport, rebuilt.OpsetImport);
    }

    private static Tensor FloatTensor(TensorProto t)
    {
        var data = new float[t.RawData.Length / sizeof(float)];
        Buffer.BlockCopy(t.RawData.ToByteArray(), 0, data, 0, t.RawData.Length);
        return tensor(data, t.Dims.ToArray());
    }

    /// <summary>Fresh ConvNeXt blocks are near-identities (gamma 1e-6); make every block matter so parity is a real test.</summary>
    internal static void Perturb(HierarchicalClassifier model)
    {
        using var _ = no_grad();
        manual_seed(7);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("gamma", StringComparison.Ordinal))
            {
                p.copy_(randn_like(p) * 0.5);
            }
            else if (name.EndsWith("bias", StringComparison.Ordinal))
            {
                p.copy_(randn_like(p) * 0.1);
            }
        }
    }
}
