using FmaEdge.Core.Contract;
using FmaEdge.TestSupport;
using FmaEdge.Training.Export;
using FmaEdge.Training.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>Driven by <see cref="BackboneRegistry"/> (as timm's tests run over list_models()): every registered name builds
/// and runs forward; every family's smallest model exports to ONNX matching ONNX Runtime on real images and reloads its
/// weights by name (the larger sizes of a family run the same modules at other widths and depths). A new family is
/// tested by being registered. Tiny inputs keep it quick.</summary>
public class BackboneRegistryTests
{
    /// <summary>The smallest size every family builds at (ViT: a multiple of its 16-pixel patches).</summary>
    private const int Size = 32;

    public static TheoryData<string> Names => [.. BackboneRegistry.Names];

    /// <summary>The smallest model of each family (a family lists its names smallest first).</summary>
    public static TheoryData<string> Smallest => [.. BackboneRegistry.Families.Select(f => f.Names[0])];

    [Fact]
    public void Names_EveryRegisteredName_IsCanonicalAndOwnedByOneFamily()
    {
        Assert.NotEmpty(BackboneRegistry.Names);
        Assert.Equal(BackboneRegistry.Names.Count, BackboneRegistry.Names.Distinct().Count());
        foreach (var name in BackboneRegistry.Names)
        {
            Assert.Equal(name, BackboneRegistry.Canonical(name));
            Assert.Equal(name, BackboneRegistry.Canonical(" " + name.ToUpperInvariant() + " "));
            Assert.Single(BackboneRegistry.Families, f => f.Names.Contains(name));
            Assert.Contains(name, BackboneRegistry.FamilyOf(name).Names);
        }

        Assert.Equal("convnext_atto", BackboneRegistry.Canonical("atto"));
        var e = Assert.Throws<ArgumentException>(() => BackboneRegistry.Canonical("resnet18"));
        Assert.Contains(string.Join(", ", BackboneRegistry.Names), e.Message);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Backbone_Registered_RunsForwardToLogitsPerLevel(string name)
    {
        var tree = TestData.Tree;
        manual_seed(3);
        using var model = new HierarchicalClassifier(new ModelConfig { Model = name, Head = "independent", ImageSize = Size }, tree);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(2, 3, Size, Size);
        Assert.Equal([2L, model.FeatureDim], model.ForwardPooled(x).shape);
        var logits = model.forward(x);
        Assert.Equal(tree.Depth, logits.Length);
        for (var l = 0; l < tree.Depth; l++)
        {
            Assert.Equal([2L, tree.Levels[l].Count], logits[l].shape);
            Assert.True(logits[l].isfinite().all().item<bool>(), $"{name}: level {l} logits are not finite");
        }
    }

    [Theory]
    [MemberData(nameof(Smallest))]
    public void Backbone_Registered_ExportsMatchingOnnxRuntimeOnRealImages(string name)
    {
        var tree = TestData.Tree;
        manual_seed(3);
        using var model = new HierarchicalClassifier(new ModelConfig { Model = name, Head = "shared", ImageSize = Size, HeadHidden = 16 }, tree);
        Perturb(model, seed: 4);
        using var dir = new TempFolder("registry-" + name);
        var path = Path.Combine(dir.Path, "model.onnx");
        var images = TestPaths.SampleImages("val", 1).Take(3).ToList();
        var result = OnnxExporter.Export(model, tree, new ExportDescription(), path, images);

        Assert.Equal(images.Count, result.VerifiedImages);
        Assert.InRange(result.MaxAbsDifference, 0, OnnxExporter.DefaultTolerance);
        var report = ModelContract.Validate(path);
        Assert.True(report.IsValid, string.Join("; ", report.Violations));
        Assert.Equal(name, report.Model!.Manifest.Model.Architecture);
    }

    [Theory]
    [MemberData(nameof(Smallest))]
    public void Backbone_Registered_ReloadsWeightsByName(string name)
    {
        var tree = TestData.Tree;
        var config = new ModelConfig { Model = name, Head = "independent", ImageSize = Size };
        using var dir = new TempFolder("registry-weights-" + name);
        manual_seed(5);
        using var source = new HierarchicalClassifier(config, tree);
        Perturb(source, seed: 6);
        manual_seed(7);
        using var target = new HierarchicalClassifier(config, tree);

        // Checkpoints (TorchSharp's format) load every parameter and buffer by its registered name.
        var checkpoint = Path.Combine(dir.Path, "weights.dat");
        source.save(checkpoint);
        target.load(checkpoint);
        var expected = source.state_dict();
        var actual = target.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        Assert.All(expected.Keys, k => Assert.True(TestData.Same(expected[k], actual[k]), $"{name}: {k} differs after reload"));

        // A pretrained file (safetensors, timm names) fills exactly what the family's layout names, and never our heads.
        if (source.Family.Pretrained is not { } layout)
        {
            var e = Assert.Throws<PretrainedWeightsException>(() => PretrainedWeights.Load(target, checkpoint));
            Assert.Contains("no pretrained loader", e.Message);
            return;
        }

        var file = Path.Combine(dir.Path, name + ".safetensors");
        source.save_safetensors(file);
        manual_seed(8);
        using var fresh = new HierarchicalClassifier(config with { Head = "flat" }, tree);
        using var headBefore = fresh.Head.Fc[0].Weight.detach().clone();
        var loaded = PretrainedWeights.Load(fresh, file);
        var pretrained = fresh.named_parameters().Where(p => layout.Loads(p.name)).ToList();
        Assert.Equal(pretrained.Count, loaded);
        Assert.All(fresh.named_parameters().Where(p => !p.name.StartsWith("head.", StringComparison.Ordinal)), p => Assert.True(layout.Loads(p.name), $"{name}: pretrained skips {p.name}"));
        Assert.All(pretrained, p => Assert.True(TestData.Same(p.parameter, expected[p.name]), $"{name}: {p.name} not loaded"));
        Assert.True(TestData.Same(headBefore, fresh.Head.Fc[0].Weight));
    }

    /// <summary>Moves every weight and BatchNorm statistic off its initial value (fresh ConvNeXt blocks scale by 1e-6,
    /// fresh ResNet blocks zero their last BatchNorm), so parity covers every branch.</summary>
    internal static void Perturb(HierarchicalClassifier model, int seed)
    {
        using var _ = no_grad();
        manual_seed(seed);
        foreach (var (_, p) in model.named_parameters())
        {
            p.add_(randn_like(p) * 0.05);
        }

        foreach (var (n, b) in model.named_buffers())
        {
            if (n.EndsWith("running_mean", StringComparison.Ordinal) || n.EndsWith("running_var", StringComparison.Ordinal))
            {
                b.add_(rand_like(b) * 0.1);
            }
        }
    }
}
