using System.Diagnostics;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Training;

/// <summary>What <see cref="KernelCheck.Run"/> found: the parameter whose float32 gradient is furthest from float64's, and
/// which fallback the trainer switched on to get there (null: oneDNN's own kernels).</summary>
public sealed record KernelCheckResult(bool Passed, string WorstParameter, double WorstRelativeError, double Seconds)
{
    /// <summary>The stem and downsample convolutions run as matrix products (<c>Conv2dLayer.PatchesAsMatMul</c>).</summary>
    public const string PatchesAsMatMul = "patches-as-matmul";

    public string? Fallback { get; init; }
}

/// <summary>Does libtorch's float32 CPU training path (channels-last, oneDNN) compute this model's gradients right on
/// this machine? A fresh copy of the model (same configuration, layer scales at a trained-like 0.05 so no block's
/// gradient vanishes into rounding) runs one forward and backward pass on a small random batch in float32 and again in
/// float64 (ATen's reference kernels), and every parameter's gradient is compared. oneDNN picks kernels by the CPU's
/// instruction set, and libtorch 2.10's AVX2 path (CPUs without AVX-512) computes ConvNeXt's 2x2 stride-2 downsample
/// with a relative error of 0.24 and the stem's weight gradient with 0.13 (docs/training.md, "Reproducibility"):
/// training there silently learns something else. Uses its own seed and leaves the caller's model alone. Stateless.</summary>
public static class KernelCheck
{
    /// <summary>Largest accepted relative error of a parameter's gradient (float32 rounding is ~1e-6; the bugs seen are ~0.1).</summary>
    public const double Tolerance = 1e-3;

    /// <summary>The models the check runs for: the ConvNeXt family, whose convolutions are where oneDNN went wrong and
    /// whose modules survive a change of dtype (ViT and ResNet-CBAM keep references that <c>to(float64)</c> replaces;
    /// they are not checked).</summary>
    public static bool Covers(ModelConfig config) => config.Model.StartsWith("convnext", StringComparison.Ordinal);

    public static KernelCheckResult Run(ModelConfig config, CategoryTree tree, int batch = 4)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tree);
        var sw = Stopwatch.StartNew();
        // No dispose scope: the layers create long-lived tensors lazily on first use (Models/Scalars.cs, cached
        // constants), and a scope would dispose them under the real model's feet.
        manual_seed(7);
        using var model = new HierarchicalClassifier(config with { DropPath = 0 }, tree);
        using (no_grad())
        {
            foreach (var (_, p) in model.named_parameters().Where(p => p.name.EndsWith("gamma", StringComparison.Ordinal)))
            {
                p.fill_(0.05);
            }
        }

        var size = config.ImageSize;
        var x = randn(batch, 3, size, size);
        var targets = tree.LevelSizes.Select(n => randint(0, n, [batch])).ToArray();
        var g32 = Gradients(model, x, targets);
        model.to(ScalarType.Float64);
        var g64 = Gradients(model, x.to(ScalarType.Float64), targets);

        var worst = ("", 0.0);
        foreach (var (name, reference) in g64)
        {
            var norm = reference.norm().item<double>();
            var err = (g32[name].to(ScalarType.Float64) - reference).norm().item<double>();
            var rel = norm > 0 ? err / norm : err;
            if (!(rel <= worst.Item2))
            {
                worst = (name, double.IsFinite(rel) ? rel : double.PositiveInfinity);
            }
        }

        return new KernelCheckResult(worst.Item2 <= Tolerance, worst.Item1, worst.Item2, sw.Elapsed.TotalSeconds);
    }

    private static Dictionary<string, Tensor> Gradients(HierarchicalClassifier model, Tensor x, Tensor[] targets)
    {
        model.train();
        model.zero_grad();
        var logits = model.forward(x);
        var loss = logits.Select((l, i) => F.cross_entropy(l, targets[i])).Aggregate((a, b) => a + b);
        loss.backward();
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.detach().clone());
    }
}
