using FmaEdge.TestSupport;
using FmaEdge.Training.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class PretrainedTests
{
    [Fact]
    public void Load_SafetensorsWithTimmNames_CopiesBackboneAndLeavesHeadAlone()
    {
        using var dir = new TempFolder("pretrained");
        var file = Path.Combine(dir.Path, "convnext_atto.safetensors");
        manual_seed(21);
        using var source = new HierarchicalConvNeXt(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 }, TestData.Tree);
        ExportTests.Perturb(source);
        source.save_safetensors(file);
        manual_seed(22);
        using var target = new HierarchicalConvNeXt(new ModelConfig { Model = "convnext_atto", Head = "flat", ImageSize = 64 }, TestData.Tree);
        using var headBefore = target.Head.Fc[0].Weight.detach().clone();

        var loaded = PretrainedWeights.Load(target, file);

        var src = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var backbone = target.named_parameters().Where(p => PretrainedWeights.IsBackbone(p.name)).ToList();
        Assert.Equal(backbone.Count, loaded);
        Assert.All(backbone, p => Assert.True(TestData.Same(p.parameter, src[p.name]), p.name));
        Assert.True(TestData.Same(headBefore, target.Head.Fc[0].Weight));
    }

    [Fact]
    public void Load_WrongSize_ThrowsListingShapeMismatches()
    {
        using var dir = new TempFolder("pretrained");
        var file = Path.Combine(dir.Path, "convnext_femto.safetensors");
        using (var femto = new HierarchicalConvNeXt(new ModelConfig { Model = "convnext_femto", Head = "independent", ImageSize = 64 }, TestData.Tree))
        {
            femto.save_safetensors(file);
        }

        using var atto = new HierarchicalConvNeXt(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 }, TestData.Tree);
        var e = Assert.Throws<PretrainedWeightsException>(() => PretrainedWeights.Load(atto, file));
        Assert.Contains("shape mismatch: stem.0.weight is [48,3,4,4] in the file, [40,3,4,4] in convnext_atto", e.Message);
    }
}
