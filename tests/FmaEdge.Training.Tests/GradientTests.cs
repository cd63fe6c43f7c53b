using FmaEdge.Core.Contract;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>The float32 training path (channels-last, oneDNN kernels) must give the gradients of the same model
/// computed in float64 (ATen's reference kernels). Forward correctness is already checked by every export against
/// ONNX Runtime; nothing else checks the backward pass, and libtorch 2.10 has had a wrong-result CPU conv bug.</summary>
public class GradientTests
{
    [Theory]
    [InlineData("independent", 112)]
    [InlineData("shared", 64)]
    public void Backward_Float32TrainingPath_MatchesFloat64Reference(string head, int size)
    {
        var tree = TestData.Tree;
        var images = TestData.Subset("train", 1).Images.Take(12).ToList();
        var pre = new ImagePreprocessor(new PreprocessSpec(), size, size);
        var x = new float[images.Count * pre.TensorLength];
        for (var i = 0; i < images.Count; i++)
        {
            using var rgb = ImageDecoder.LoadRgb(images[i].Path);
            pre.Preprocess(rgb, x.AsSpan(i * pre.TensorLength, pre.TensorLength));
        }

        manual_seed(7);
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = head, ImageSize = size, HeadHidden = 32 }, tree);
        // Layer scale 1e-6 would make every block's gradient vanish into rounding; a trained-like scale tests them.
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.EndsWith("gamma", StringComparison.Ordinal)))
            {
                p.fill_(0.05);
            }
        }

        var targets = Enumerable.Range(0, tree.Depth).Select(l => images.Select(im => (long)tree.PathOfLeaf(im.Leaf)[l]).ToArray()).ToArray();
        var g32 = Gradients(model, tensor(x, [images.Count, 3, size, size]), targets, tree);
        model.to(ScalarType.Float64);
        var g64 = Gradients(model, tensor(x, [images.Count, 3, size, size]).to(float64), targets, tree);

        Assert.Equal(g64.Count, g32.Count);
        foreach (var (name, reference) in g64)
        {
            var norm = reference.norm().item<double>();
            var err = (g32[name].to(float64) - reference).norm().item<double>();
            Assert.True(norm > 0, $"{name}: zero gradient in float64");
            Assert.True(err <= 1e-4 * norm, $"{name}: float32 gradient differs from float64 by {err / norm:E2} (relative)");
        }
    }

    private static Dictionary<string, Tensor> Gradients(HierarchicalClassifier model, Tensor x, long[][] targets, Core.Taxonomy.CategoryTree tree)
    {
        model.train();
        model.zero_grad();
        using var loss = new HierarchicalLoss(new LossOptions { Kind = LossKind.Ce }, tree, CPU);
        var logits = model.forward(x);
        var value = loss.Compute(logits, targets.Select(t => tensor(t)).ToArray(), Enumerable.Repeat(1.0, tree.Depth).ToArray());
        value.Total.backward();
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.detach().clone());
    }
}
