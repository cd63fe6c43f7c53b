using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FmaEdge.Training.Models;

/// <summary>An image backbone: normalised images [N,3,S,S] in, pooled feature [N, <see cref="FeatureDim"/>] out. Its
/// parts are registered at the owning model's root under timm's names (<see cref="Modules"/>, <see cref="Parameters"/>),
/// so checkpoints and pretrained files load by those names. Each family keeps its TorchSharp forward pass and its ONNX
/// graph side by side, module by module (<c>forward</c> next to <c>ToOnnx</c>); the registry's tests check that they
/// agree. Not thread-safe (TorchSharp modules are not).</summary>
internal abstract class Backbone : IDisposable
{
    /// <summary>Width of the pooled feature the head reads.</summary>
    public abstract int FeatureDim { get; }

    /// <summary>(name, parameter) pairs the owner registers at its root, before <see cref="Modules"/>.</summary>
    public virtual IEnumerable<(string Name, Parameter Parameter)> Parameters() => [];

    /// <summary>(name, module) pairs the owner registers at its root.</summary>
    public abstract IEnumerable<(string Name, nn.Module Module)> Modules();

    /// <summary>[N,3,S,S] -> [N, FeatureDim]; training or eval as the registered modules are set.</summary>
    public abstract Tensor ForwardPooled(Tensor x);

    /// <summary>The same computation in eval mode as ONNX nodes reading <paramref name="input"/>; returns the pooled
    /// feature's value name.</summary>
    public abstract string ToOnnx(OnnxGraphBuilder g, string input);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases process-wide settings a family changed (see ResNet-CBAM); the modules belong to the owner.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}
