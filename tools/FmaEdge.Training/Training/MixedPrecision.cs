using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FmaEdge.Training.Training;

/// <summary>bfloat16 mixed-precision training without autocast (TorchSharp has none): a bfloat16 copy of the model
/// runs the forward and backward passes, the float32 model keeps the master weights and takes the optimiser step.
/// Per step: <see cref="PullWeights"/> (master -> copy), <see cref="Forward"/> (logits back in float32, so the loss
/// and its softmax run in float32), backward, <see cref="PushGradients"/> (copy's gradients -> master's, in float32;
/// BatchNorm statistics too). On CPUs with AVX-512 BF16 oneDNN runs the convolutions and matrix products in bf16
/// (docs/training.md, Speed). Not thread-safe.</summary>
public sealed class MixedPrecision : IDisposable
{
    public const string Float32 = "fp32";
    public const string BFloat16 = "bf16";

    private readonly HierarchicalClassifier _compute;
    private readonly (Tensor Master, Tensor Compute)[] _parameters;
    private readonly (Tensor Master, Tensor Compute)[] _buffers;

    public MixedPrecision(HierarchicalClassifier master, CategoryTree tree, Device device)
    {
        _compute = new HierarchicalClassifier(master.Config, tree);
        _compute.to(device).to(ScalarType.BFloat16);
        _compute.train();
        _parameters = ModelPairs.Parameters(master, _compute);
        _buffers = ModelPairs.Buffers(master, _compute);
    }

    /// <summary>Copies the master weights (and buffers) into the bfloat16 copy.</summary>
    public void PullWeights()
    {
        using var _ = no_grad();
        foreach (var (master, compute) in _parameters.Concat(_buffers))
        {
            compute.copy_(master);
        }
    }

    /// <summary>The forward pass in bfloat16; logits returned in float32.</summary>
    public Tensor[] Forward(Tensor x)
    {
        _compute.zero_grad();
        using var input = x.to(ScalarType.BFloat16);
        return _compute.forward(input).Select(l => l.to(ScalarType.Float32)).ToArray();
    }

    /// <summary>After backward: the copy's gradients, in float32, become the master's; buffers follow.</summary>
    public void PushGradients()
    {
        using var _ = no_grad();
        foreach (var (master, compute) in _parameters)
        {
            var g = compute.grad;
            if (g is null)
            {
                continue;
            }

            if (master.grad is { } existing)
            {
                existing.copy_(g);
            }
            else
            {
                master.grad = g.to(ScalarType.Float32);
            }
        }

        foreach (var (master, compute) in _buffers)
        {
            master.copy_(compute);
        }
    }

    public void Dispose() => _compute.Dispose();
}
