using FmaEdge.Training.Models;
using static FmaEdge.Training.Export.ConvNeXtGraph;
using static FmaEdge.Training.Export.OnnxGraphBuilder;

namespace FmaEdge.Training.Export;

/// <summary>ONNX nodes for <see cref="ResNetCbam"/> in eval mode: Conv (bias-free) + BatchNormalization (running
/// statistics), Relu, MaxPool, CBAM as ReduceMean/ReduceMax + 1x1 Conv + Sigmoid + Mul, global ReduceMean.
/// Stateless.</summary>
internal static class ResNetCbamGraph
{
    /// <summary>Adds the backbone; returns the pooled feature [N, 2048].</summary>
    public static string Pooled(OnnxGraphBuilder g, string input, ResNetCbam net)
    {
        var x = g.Node("Relu", [BatchNorm(g, Conv(g, input, net.Conv1, "conv1"), net.Bn1, "bn1")]);
        x = g.Node("MaxPool", [x], null, Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1));
        for (var s = 0; s < net.Layers.Count; s++)
        {
            for (var b = 0; b < net.Layers[s].Length; b++)
            {
                x = Bottleneck(g, x, net.Layers[s][b], $"layer{s + 1}.{b}");
            }
        }

        return g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 0));
    }

    private static string Bottleneck(OnnxGraphBuilder g, string x, CbamBottleneck block, string name)
    {
        var h = g.Node("Relu", [BatchNorm(g, Conv(g, x, block.Conv1, name + ".conv1"), block.Bn1, name + ".bn1")]);
        h = g.Node("Relu", [BatchNorm(g, Conv(g, h, block.Conv2, name + ".conv2"), block.Bn2, name + ".bn2")]);
        h = BatchNorm(g, Conv(g, h, block.Conv3, name + ".conv3"), block.Bn3, name + ".bn3");
        h = Cbam(g, h, block.Attention, name + ".se");
        var shortcut = block.DownConv is not null && block.DownBn is not null
            ? BatchNorm(g, Conv(g, x, block.DownConv, name + ".downsample.0"), block.DownBn, name + ".downsample.1")
            : x;
        return g.Node("Relu", [g.Node("Add", [h, shortcut])]);
    }

    private static string Cbam(OnnxGraphBuilder g, string x, Cbam cbam, string name)
    {
        var ch = cbam.Channel;
        var avg = g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 1));
        var max = g.Node("ReduceMax", [x], null, Ints("axes", 2, 3), Int("keepdims", 1));
        // The MLP is shared: the same initializers serve both pooled inputs.
        var a = Conv(g, g.Node("Relu", [Conv(g, avg, ch.Fc1, name + ".channel.fc1")]), ch.Fc2, name + ".channel.fc2");
        var fc1 = name + ".channel.fc1.weight";
        var fc2 = name + ".channel.fc2.weight";
        var m = g.Node("Conv", [g.Node("Relu", [g.Node("Conv", [max, fc1])]), fc2]);
        var gate = g.Node("Sigmoid", [g.Node("Add", [a, m])]);
        var y = g.Node("Mul", [x, gate]);

        var sp = cbam.Spatial;
        var mean = g.Node("ReduceMean", [y], null, Ints("axes", 1), Int("keepdims", 1));
        var cmax = g.Node("ReduceMax", [y], null, Ints("axes", 1), Int("keepdims", 1));
        var both = g.Node("Concat", [mean, cmax], null, Int("axis", 1));
        var s = BatchNorm(g, Conv(g, both, sp.Conv, name + ".spatial.conv.conv"), sp.Bn, name + ".spatial.conv.bn");
        return g.Node("Mul", [y, g.Node("Sigmoid", [s])]);
    }

    /// <summary>Inference-mode BatchNormalization with the layer's running statistics.</summary>
    private static string BatchNorm(OnnxGraphBuilder g, string x, BatchNormLayer bn, string name) =>
        g.Node("BatchNormalization",
            [x, g.Initializer(name + ".weight", bn.Weight), g.Initializer(name + ".bias", bn.Bias),
             g.Initializer(name + ".running_mean", bn.RunningMean), g.Initializer(name + ".running_var", bn.RunningVar)], null,
            Float("epsilon", (float)bn.Eps), Float("momentum", (float)(1 - bn.Momentum)));
}
