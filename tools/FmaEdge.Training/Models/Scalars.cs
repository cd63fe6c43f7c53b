using TorchSharp;

namespace FmaEdge.Training.Models;

/// <summary>Long-lived TorchSharp scalars for hot paths. TorchSharp's <c>add(tensor)</c> and friends create a temporary
/// <see cref="Scalar"/> (alpha = 1) and pass only its native handle to libtorch, so the garbage collector may finalise
/// (free) it while the native call still reads it: a use-after-free that showed up as NaN losses (ResNet rows) and as
/// "toFloat: Expected false to be true" in ViT blocks during `fma-train compare`. The same bug class as the per-call
/// RunOptions in OnnxClassifier. These are never disposed. Thread-safe (immutable native values).</summary>
internal static class Scalars
{
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar OneLong = 1L.ToScalar();
}
