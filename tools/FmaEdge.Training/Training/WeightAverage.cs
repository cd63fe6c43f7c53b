using FmaEdge.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FmaEdge.Training.Training;

/// <summary>Exponential moving average of a model's weights (Polyak averaging; timm's ModelEma): after every
/// optimiser step, average = d * average + (1 - d) * live, with d = min(decay, (1 + step) / (10 + step)) so the
/// early, fast-moving weights are not averaged over a long window. Buffers (BatchNorm statistics) are copied, not
/// averaged. The average is what the run evaluates, keeps as "best" and exports. Not thread-safe.</summary>
public sealed class WeightAverage
{
    private readonly (Tensor Live, Tensor Average)[] _parameters;
    private readonly (Tensor Live, Tensor Average)[] _buffers;

    /// <param name="live">The model being trained.</param>
    /// <param name="average">A model of the same configuration and tree; it holds the average (start it from the
    /// live weights, or from a checkpoint's average on resume).</param>
    public WeightAverage(HierarchicalClassifier live, HierarchicalClassifier average, double decay)
    {
        if (decay is <= 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(decay), decay, "weight-average decay must be in (0, 1)");
        }

        Decay = decay;
        Average = average;
        _parameters = ModelPairs.Parameters(live, average);
        _buffers = ModelPairs.Buffers(live, average);
    }

    public double Decay { get; }

    public HierarchicalClassifier Average { get; }

    /// <summary>The factor applied at optimiser step <paramref name="step"/> (0-based).</summary>
    public double DecayAt(long step) => Math.Min(Decay, (1.0 + step) / (10.0 + step));

    /// <summary>Starts the average at the live weights.</summary>
    public void CopyFromLive()
    {
        using var _ = no_grad();
        foreach (var (live, average) in _parameters.Concat(_buffers))
        {
            average.copy_(live);
        }
    }

    /// <summary>Folds the live weights after optimiser step <paramref name="step"/> into the average.</summary>
    public void Update(long step)
    {
        var d = DecayAt(step);
        using var _ = no_grad();
        // Long-lived scalars: a temporary Scalar passed by handle could be collected during the native call (Scalars.cs).
        using var keep = d.ToScalar();
        using var take = (1 - d).ToScalar();
        foreach (var (live, average) in _parameters)
        {
            average.mul_(keep).add_(live, take);
        }

        foreach (var (live, average) in _buffers)
        {
            average.copy_(live);
        }
    }
}
