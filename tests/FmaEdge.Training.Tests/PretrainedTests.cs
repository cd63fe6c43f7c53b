using FmaEdge.TestSupport;
using FmaEdge.Training.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>Strict loading errors; loading by name for every family with a pretrained layout is in
/// <see cref="BackboneRegistryTests"/>.</summary>
public class PretrainedTests
{
    [Fact]
    public void Load_WrongSize_ThrowsListingShapeMismatches()
    {
        using var dir = new TempFolder("pretrained");
        var file = Path.Combine(dir.Path, "convnext_femto.safetensors");
        using (var femto = new HierarchicalClassifier(new ModelConfig { Model = "convnext_femto", Head = "independent", ImageSize = 64 }, TestData.Tree))
        {
            femto.save_safetensors(file);
        }

        using var atto = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 }, TestData.Tree);
        var e = Assert.Throws<PretrainedWeightsException>(() => PretrainedWeights.Load(atto, file));
        Assert.Contains("shape mismatch: stem.0.weight is [48,3,4,4] in the file, [40,3,4,4] in convnext_atto", e.Message);
    }
}
