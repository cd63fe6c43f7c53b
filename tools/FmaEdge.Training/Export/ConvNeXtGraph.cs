using FmaEdge.Training.Models;
using Onnx;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace FmaEdge.Training.Export;

/// <summary>Translates a <see cref="HierarchicalConvNeXt"/> (any backbone family) into ONNX opset 17 nodes that compute
/// exactly what its forward() computes in eval mode (drop-path is the identity there, BatchNorm uses its running
/// statistics). Initializers keep the PyTorch names. The ConvNeXt backbone is here; ResNet-50+CBAM is in
/// <see cref="ResNetCbamGraph"/>, ViT in <see cref="VitGraph"/>; the heads are shared.</summary>
internal static class ConvNeXtGraph
{
    public const int Opset = 17;
    public const string InputName = "image";

    public static string OutputName(int level) => $"level{level}_logits";

    /// <summary>Builds the graph: input "image" [N,3,S,S], outputs level{l}_logits [N, n_l].</summary>
    public static GraphProto Build(HierarchicalConvNeXt model)
    {
        var g = new OnnxGraphBuilder();
        var size = model.Config.ImageSize;
        g.Graph.Input.Add(FloatValue(InputName, [null, 3, size, size]));
        using var _ = no_grad();

        var pooled = model.Family switch
        {
            BackboneFamily.ResNetCbam => ResNetCbamGraph.Pooled(g, InputName, model.ResNet!),
            BackboneFamily.Vit => VitGraph.Pooled(g, InputName, model.Vit!),
            _ => ConvNeXtPooled(g, model),
        };
        var feat = LayerNorm(g, pooled, model.Head.Norm, "head.norm");
        var logits = Head(g, feat, model.Head);
        for (var l = 0; l < logits.Length; l++)
        {
            g.Node("Identity", [logits[l]], OutputName(l));
            g.Graph.Output.Add(FloatValue(OutputName(l), [null, model.LevelSizes[l]]));
        }

        return g.Graph;
    }

    private static string ConvNeXtPooled(OnnxGraphBuilder g, HierarchicalConvNeXt model)
    {
        var x = Conv(g, InputName, model.StemConv, "stem.0");
        x = LayerNorm(g, x, model.StemNorm, "stem.1");
        for (var s = 0; s < model.Stages.Count; s++)
        {
            var stage = model.Stages[s];
            if (stage.DownNorm is not null && stage.DownConv is not null)
            {
                x = LayerNorm(g, x, stage.DownNorm, $"stages.{s}.downsample.0");
                x = Conv(g, x, stage.DownConv, $"stages.{s}.downsample.1");
            }

            for (var b = 0; b < stage.Blocks.Count; b++)
            {
                x = Block(g, x, stage.Blocks[b], $"stages.{s}.blocks.{b}");
            }
        }

        return g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 0));
    }

    private static string Block(OnnxGraphBuilder g, string x, ConvNeXtBlock block, string name)
    {
        var dw = Conv(g, x, block.ConvDw, name + ".conv_dw");
        var nhwc = g.Node("Transpose", [dw], null, Ints("perm", 0, 2, 3, 1));
        var n = LayerNorm(g, nhwc, block.Norm, name + ".norm");
        var h = Linear(g, n, block.Mlp.Fc1, name + ".mlp.fc1");
        var a = Gelu(g, h);
        var m = Linear(g, a, block.Mlp.Fc2, name + ".mlp.fc2");
        var scaled = g.Node("Mul", [m, g.Initializer(name + ".gamma", block.Gamma)]);
        var nchw = g.Node("Transpose", [scaled], null, Ints("perm", 0, 3, 1, 2));
        return g.Node("Add", [x, nchw]);
    }

    private static string[] Head(OnnxGraphBuilder g, string feat, HierarchicalHead head)
    {
        var levels = head.LevelSizes.Length;
        var outputs = new string[levels];
        switch (head.Kind)
        {
            case HeadKind.Flat:
                var leaf = Linear(g, feat, head.Fc[0], "head.fc");
                var axis2 = g.Int64Initializer("axes_2", [2]);
                var z = g.Node("Unsqueeze", [leaf, axis2]);
                for (var l = 0; l < levels - 1; l++)
                {
                    var masked = g.Node("Add", [z, g.Initializer($"head.logmask{l}", head.LogMasks![l])]);
                    outputs[l] = g.Node("ReduceLogSumExp", [masked], null, Ints("axes", 1), Int("keepdims", 0));
                }

                outputs[^1] = leaf;
                break;
            case HeadKind.Independent:
                for (var l = 0; l < levels; l++)
                {
                    outputs[l] = Linear(g, feat, head.Fc[l], $"head.fc.{l}");
                }

                break;
            default:
                string? parent = null;
                for (var l = 0; l < levels; l++)
                {
                    var input = parent is null ? feat : g.Node("Concat", [feat, parent], null, Int("axis", 1));
                    var h = Gelu(g, Linear(g, input, head.HiddenLayers![l], $"head.hidden.{l}"));
                    outputs[l] = Linear(g, h, head.Fc[l], $"head.fc.{l}");
                    parent = h;
                }

                break;
        }

        return outputs;
    }

    internal static string Conv(OnnxGraphBuilder g, string x, Conv2dLayer c, string name) =>
        g.Node("Conv", c.Bias is null ? [x, g.Initializer(name + ".weight", c.Weight)] : [x, g.Initializer(name + ".weight", c.Weight), g.Initializer(name + ".bias", c.Bias)], null,
            Ints("kernel_shape", c.Kernel, c.Kernel), Ints("strides", c.Stride, c.Stride),
            Ints("pads", c.Padding, c.Padding, c.Padding, c.Padding), Ints("dilations", 1, 1), Int("group", c.Groups));

    internal static string LayerNorm(OnnxGraphBuilder g, string x, LayerNormLayer ln, string name)
    {
        var input = ln.ChannelsFirst ? g.Node("Transpose", [x], null, Ints("perm", 0, 2, 3, 1)) : x;
        var y = g.Node("LayerNormalization", [input, g.Initializer(name + ".weight", ln.Weight), g.Initializer(name + ".bias", ln.Bias)], null,
            Int("axis", -1), Float("epsilon", (float)ln.Eps));
        return ln.ChannelsFirst ? g.Node("Transpose", [y], null, Ints("perm", 0, 3, 1, 2)) : y;
    }

    /// <summary>x @ W^T + b on the last axis (any rank); W^T is stored so MatMul needs no transpose.</summary>
    internal static string Linear(OnnxGraphBuilder g, string x, LinearLayer fc, string name)
    {
        using var m = fc.Matrix();
        using var wt = m.t();
        var mm = g.Node("MatMul", [x, g.Initializer(name + ".weight_t", wt)]);
        return g.Node("Add", [mm, g.Initializer(name + ".bias", fc.Bias)]);
    }

    /// <summary>Exact GELU as opset 17 has no Gelu op: 0.5 * x * (1 + erf(x / sqrt 2)).</summary>
    internal static string Gelu(OnnxGraphBuilder g, string x)
    {
        var scaled = g.Node("Div", [x, g.Scalar(MathF.Sqrt(2f))]);
        var erf = g.Node("Erf", [scaled]);
        var plus1 = g.Node("Add", [erf, g.Scalar(1f)]);
        var prod = g.Node("Mul", [x, plus1]);
        return g.Node("Mul", [prod, g.Scalar(0.5f)]);
    }
}
