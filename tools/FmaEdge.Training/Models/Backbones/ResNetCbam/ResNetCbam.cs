using FmaEdge.Training.Export;
using FmaEdge.Training.Native;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Models;

/// <summary>CBAM channel attention (timm's CbamChannel): x * sigmoid(mlp(avgpool x) + mlp(maxpool x)), the MLP a
/// shared pair of bias-free 1x1 convolutions C -> C/16 -> C with ReLU. Names "fc1", "fc2". Not thread-safe.</summary>
internal sealed class CbamChannel : nn.Module<Tensor, Tensor>
{
    public const int Reduction = 16;

    public CbamChannel(int channels)
        : base("channel")
    {
        var hidden = Math.Max(1, channels / Reduction);
        Fc1 = new Conv2dLayer("fc1", channels, hidden, 1, 1, 0, 1, bias: false);
        Fc2 = new Conv2dLayer("fc2", hidden, channels, 1, 1, 0, 1, bias: false);
        register_module("fc1", Fc1);
        register_module("fc2", Fc2);
    }

    public Conv2dLayer Fc1 { get; }
    public Conv2dLayer Fc2 { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // The 1x1 convolutions act on 1x1 pooled maps, i.e. they are matrix products; computed as such because
        // libtorch 2.10's oneDNN brgemm 1x1-convolution path dies with SIGFPE on some of these shapes.
        var avg = x.mean([2L, 3L]);
        var max = x.amax([2L, 3L]);
        var sum = Mlp(avg).add(Mlp(max), Scalars.One);
        var gate = sum.sigmoid().unsqueeze(-1).unsqueeze(-1);
        return x.mul(gate).MoveToOuterDisposeScope();
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var avg = g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 1));
        var max = g.Node("ReduceMax", [x], null, Ints("axes", 2, 3), Int("keepdims", 1));
        // The MLP is shared: the initializers added for the average serve the maximum too.
        var a = Fc2.ToOnnx(g, g.Node("Relu", [Fc1.ToOnnx(g, avg)]));
        var m = g.Node("Conv", [g.Node("Relu", [g.Node("Conv", [max, g.NameOf(Fc1.Weight)])]), g.NameOf(Fc2.Weight)]);
        var gate = g.Node("Sigmoid", [g.Node("Add", [a, m])]);
        return g.Node("Mul", [x, gate]);
    }

    private Tensor Mlp(Tensor pooled)
    {
        using var w1 = Fc1.Weight.flatten(1);
        using var w2 = Fc2.Weight.flatten(1);
        using var h = F.linear(pooled, w1);
        using var r = F.relu(h);
        return F.linear(r, w2);
    }
}

/// <summary>CBAM spatial attention (timm's CbamSpatial): x * sigmoid(BN(conv7x7([mean_c x, max_c x]))). Names
/// "conv.conv" (bias-free), "conv.bn". Not thread-safe.</summary>
internal sealed class CbamSpatial : nn.Module<Tensor, Tensor>
{
    public const int Kernel = 7;

    public CbamSpatial()
        : base("spatial")
    {
        Conv = new Conv2dLayer("conv", 2, 1, Kernel, 1, Kernel / 2, 1, bias: false);
        Bn = new BatchNormLayer("bn", 1);
        register_module("conv", nn.Sequential(("conv", (nn.Module<Tensor, Tensor>)Conv), ("bn", Bn)));
    }

    public Conv2dLayer Conv { get; }
    public BatchNormLayer Bn { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var mean = x.mean([1L], keepdim: true);
        using var max = x.amax([1L], keepdim: true);
        using var both = cat([mean, max], 1);
        using var c = Conv.forward(both);
        using var n = Bn.forward(c);
        using var gate = n.sigmoid();
        return x.mul(gate);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var mean = g.Node("ReduceMean", [x], null, Ints("axes", 1), Int("keepdims", 1));
        var max = g.Node("ReduceMax", [x], null, Ints("axes", 1), Int("keepdims", 1));
        var both = g.Node("Concat", [mean, max], null, Int("axis", 1));
        var s = Bn.ToOnnx(g, Conv.ToOnnx(g, both));
        return g.Node("Mul", [x, g.Node("Sigmoid", [s])]);
    }
}

/// <summary>CBAM (Woo et al. 2018): channel then spatial attention. Names "channel.*", "spatial.*". Not thread-safe.</summary>
internal sealed class Cbam : nn.Module<Tensor, Tensor>
{
    public Cbam(int channels)
        : base("se")
    {
        Channel = new CbamChannel(channels);
        Spatial = new CbamSpatial();
        register_module("channel", Channel);
        register_module("spatial", Spatial);
    }

    public CbamChannel Channel { get; }
    public CbamSpatial Spatial { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var c = Channel.forward(x);
        return Spatial.forward(c);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x) => Spatial.ToOnnx(g, Channel.ToOnnx(g, x));
}

/// <summary>ResNet bottleneck (timm's Bottleneck, stride on the 3x3 conv) with CBAM on the residual branch before
/// the addition, as in the CBAM paper and timm's attn_layer="cbam" ("se" slot). Names conv1..3, bn1..3, se.*,
/// downsample.0/1. Not thread-safe.</summary>
internal sealed class CbamBottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    public CbamBottleneck(int inChannels, int planes, int stride, double dropPath)
        : base("block")
    {
        var outChannels = planes * Expansion;
        Stride = stride;
        DropPathRate = dropPath;
        Conv1 = new Conv2dLayer("conv1", inChannels, planes, 1, 1, 0, 1, bias: false);
        Bn1 = new BatchNormLayer("bn1", planes);
        Conv2 = new Conv2dLayer("conv2", planes, planes, 3, stride, 1, 1, bias: false);
        Bn2 = new BatchNormLayer("bn2", planes);
        Conv3 = new Conv2dLayer("conv3", planes, outChannels, 1, 1, 0, 1, bias: false);
        Bn3 = new BatchNormLayer("bn3", outChannels);
        Attention = new Cbam(outChannels);
        register_module("conv1", Conv1);
        register_module("bn1", Bn1);
        register_module("conv2", Conv2);
        register_module("bn2", Bn2);
        register_module("conv3", Conv3);
        register_module("bn3", Bn3);
        register_module("se", Attention);
        if (stride != 1 || inChannels != outChannels)
        {
            DownConv = new Conv2dLayer("0", inChannels, outChannels, 1, stride, 0, 1, bias: false);
            DownBn = new BatchNormLayer("1", outChannels);
            register_module("downsample", nn.Sequential(("0", (nn.Module<Tensor, Tensor>)DownConv), ("1", DownBn)));
        }
    }

    public int Stride { get; }
    public double DropPathRate { get; }
    public Conv2dLayer Conv1 { get; }
    public BatchNormLayer Bn1 { get; }
    public Conv2dLayer Conv2 { get; }
    public BatchNormLayer Bn2 { get; }
    public Conv2dLayer Conv3 { get; }
    public BatchNormLayer Bn3 { get; }
    public Cbam Attention { get; }
    public Conv2dLayer? DownConv { get; }
    public BatchNormLayer? DownBn { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>A bias-free 1x1 convolution (stride s) as the identical matrix product over the channel axis of the
    /// channels-last activations. libtorch 2.10's oneDNN brgemm 1x1-convolution kernels die with SIGFPE (integer division
    /// by zero in their blocking heuristic) on several ResNet shapes at small inputs, forward and backward; a matrix
    /// product never reaches them and is as fast. The export keeps the Conv (same numbers).</summary>
    internal static Tensor Pointwise(Conv2dLayer conv, Tensor x, int stride)
    {
        using var scope = NewDisposeScope();
        var input = stride == 1 ? x : x[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null, null, stride)];
        var nhwc = input.permute(0, 2, 3, 1);
        var y = F.linear(nhwc, conv.Weight.flatten(1));
        return y.permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = F.relu(Bn1.forward(Pointwise(Conv1, x, 1)));
        h = F.relu(Bn2.forward(Conv2.forward(h)));
        h = Bn3.forward(Pointwise(Conv3, h, 1));
        h = Attention.forward(h);
        h = DropPath.Apply(h, DropPathRate, training);
        var shortcut = DownConv is not null && DownBn is not null ? DownBn.forward(Pointwise(DownConv, x, Stride)) : x;
        return F.relu(h.add(shortcut, Scalars.One)).MoveToOuterDisposeScope();
    }

    /// <summary>The 1x1 convolutions stay Conv nodes here (the same numbers as <see cref="Pointwise"/>).</summary>
    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var h = g.Node("Relu", [Bn1.ToOnnx(g, Conv1.ToOnnx(g, x))]);
        h = g.Node("Relu", [Bn2.ToOnnx(g, Conv2.ToOnnx(g, h))]);
        h = Bn3.ToOnnx(g, Conv3.ToOnnx(g, h));
        h = Attention.ToOnnx(g, h);
        var shortcut = DownConv is not null && DownBn is not null ? DownBn.ToOnnx(g, DownConv.ToOnnx(g, x)) : x;
        return g.Node("Relu", [g.Node("Add", [h, shortcut])]);
    }
}

/// <summary>ResNet-50 (bottlenecks [3,4,6,3], widths 64..512 x4) with CBAM after each bottleneck; timm's names
/// (conv1, bn1, layer1..layer4.{b}.*). Output: the 2048-wide globally average-pooled feature. While one exists,
/// oneDNN is off for the process (see the constructor). Not thread-safe.</summary>
internal sealed class ResNetCbam : Backbone
{
    private readonly bool _oneDnnToRestore;

    public static readonly int[] Depths = [3, 4, 6, 3];
    public static readonly int[] Planes = [64, 128, 256, 512];
    public const int StemWidth = 64;

    public ResNetCbam(double dropPath)
    {
        // libtorch 2.10's oneDNN kernels give NaN gradients for this network on the dev machine at random steps
        // (ResNetTrainingTests: 3 of 12 cases per run with oneDNN, none without). The backward pass picks its
        // kernels when it runs, so oneDNN stays off for the process while a ResNet model exists.
        _oneDnnToRestore = NativeTuning.SetOneDnn(false);
        Conv1 = new Conv2dLayer("conv1", 3, StemWidth, 7, 2, 3, 1, bias: false);
        Bn1 = new BatchNormLayer("bn1", StemWidth);
        var total = Depths.Sum();
        var index = 0;
        var inChannels = StemWidth;
        var layers = new List<CbamBottleneck[]>();
        for (var s = 0; s < Depths.Length; s++)
        {
            var blocks = new CbamBottleneck[Depths[s]];
            for (var b = 0; b < Depths[s]; b++)
            {
                var rate = total == 1 ? 0 : dropPath * index / (total - 1);
                blocks[b] = new CbamBottleneck(inChannels, Planes[s], b == 0 && s > 0 ? 2 : 1, rate);
                inChannels = Planes[s] * CbamBottleneck.Expansion;
                index++;
            }

            layers.Add(blocks);
        }

        Layers = layers;
        InitWeights();
    }

    public override int FeatureDim => Planes[^1] * CbamBottleneck.Expansion;
    public Conv2dLayer Conv1 { get; }
    public BatchNormLayer Bn1 { get; }
    public IReadOnlyList<CbamBottleneck[]> Layers { get; }

    /// <summary>conv1, bn1, layer1..layer4.</summary>
    public override IEnumerable<(string Name, nn.Module Module)> Modules()
    {
        yield return ("conv1", Conv1);
        yield return ("bn1", Bn1);
        for (var s = 0; s < Layers.Count; s++)
        {
            yield return ($"layer{s + 1}", new ModuleList<CbamBottleneck>(Layers[s]));
        }
    }

    /// <summary>[N,3,H,W] -> pooled feature [N, 2048].</summary>
    public override Tensor ForwardPooled(Tensor x)
    {
        using var scope = NewDisposeScope();
        // Channels-last (NCHW shape, NHWC memory): the 1x1 convolutions are then plain matrix products on contiguous rows.
        var h = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        h = F.relu(Bn1.forward(Conv1.forward(h)));
        // Max-pool in the normal layout: libtorch 2.10's channels-last max_pool2d backward gives NaN gradients at
        // batch >= 24 on 32x32 inputs (found by ResNetTrainingTests); the pooled result goes back to channels-last.
        h = F.max_pool2d(h.contiguous(), [3L, 3L], [2L, 2L], [1L, 1L], [1L, 1L]);
        h = h.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        foreach (var layer in Layers)
        {
            foreach (var block in layer)
            {
                var next = block.forward(h);
                h = next;
            }
        }

        return h.mean([2L, 3L]).MoveToOuterDisposeScope();
    }

    public override string ToOnnx(OnnxGraphBuilder g, string input)
    {
        var x = g.Node("Relu", [Bn1.ToOnnx(g, Conv1.ToOnnx(g, input))]);
        x = g.Node("MaxPool", [x], null, Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1));
        foreach (var block in Layers.SelectMany(l => l))
        {
            x = block.ToOnnx(g, x);
        }

        return g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 0));
    }

    protected override void Dispose(bool disposing)
    {
        NativeTuning.SetOneDnn(_oneDnnToRestore);
        base.Dispose(disposing);
    }

    /// <summary>timm's ResNet init: Kaiming-normal (fan_out, ReLU) convolutions, BN weight 1 / bias 0, and the last BN
    /// of every bottleneck zeroed (zero_init_last), so each block starts as the identity and deep training is stable.</summary>
    private void InitWeights()
    {
        using var _ = no_grad();
        Init.KaimingNormalFanOut(Conv1.Weight);
        foreach (var block in Layers.SelectMany(l => l))
        {
            foreach (var c in new[] { block.Conv1, block.Conv2, block.Conv3, block.Attention.Channel.Fc1, block.Attention.Channel.Fc2, block.Attention.Spatial.Conv })
            {
                Init.KaimingNormalFanOut(c.Weight);
            }

            if (block.DownConv is not null)
            {
                Init.KaimingNormalFanOut(block.DownConv.Weight);
            }

            block.Bn3.Weight.zero_();
        }
    }
}
