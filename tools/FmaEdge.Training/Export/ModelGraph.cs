using FmaEdge.Training.Models;
using Onnx;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace FmaEdge.Training.Export;

/// <summary>The ONNX graph (opset 17) of a <see cref="HierarchicalClassifier"/>: input "image" [N,3,S,S], outputs
/// level{l}_logits [N, n_l], computing exactly what forward() computes in eval mode (drop-path is the identity there,
/// BatchNorm uses its running statistics). The nodes come from each module's <c>ToOnnx</c>, next to its
/// <c>forward</c>; initializers keep the PyTorch names. Stateless.</summary>
internal static class ModelGraph
{
    public const int Opset = 17;
    public const string InputName = "image";

    public static string OutputName(int level) => $"level{level}_logits";

    public static GraphProto Build(HierarchicalClassifier model)
    {
        var g = new OnnxGraphBuilder(model);
        var size = model.Config.ImageSize;
        g.Graph.Input.Add(FloatValue(InputName, [null, 3, size, size]));
        using var _ = no_grad();
        var logits = model.ToOnnx(g, InputName);
        for (var l = 0; l < logits.Length; l++)
        {
            g.Node("Identity", [logits[l]], OutputName(l));
            g.Graph.Output.Add(FloatValue(OutputName(l), [null, model.LevelSizes[l]]));
        }

        return g.Graph;
    }
}
