using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Models;

/// <summary>A 2-D convolution with explicit weight/bias parameters (names "weight", "bias" as in PyTorch). Each layer
/// here has its TorchSharp <c>forward</c> and its ONNX <c>ToOnnx</c> side by side. Not thread-safe (as every TorchSharp
/// module).</summary>
internal sealed class Conv2dLayer : nn.Module<Tensor, Tensor>
{
    public Conv2dLayer(string name, int inChannels, int outChannels, int kernel, int stride, int padding, int groups, bool bias = true)
        : base(name)
    {
        Kernel = kernel;
        Stride = stride;
        Padding = padding;
        Groups = groups;
        register_parameter("weight", new Parameter(empty(outChannels, inChannels / groups, kernel, kernel)));
        if (bias)
        {
            register_parameter("bias", new Parameter(zeros(outChannels)));
        }

        Init.TruncNormal(Weight);
    }

    // Looked up on every use: Module.to(device/dtype) replaces registered parameters, so a stored reference
    // would point at a disposed tensor after moving the model.
    public Parameter Weight => get_parameter("weight")!;

    /// <summary>Null for a bias-free convolution (ResNet's convolutions before a BatchNorm).</summary>
    public Parameter? Bias => get_parameter("bias");
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }
    public int Groups { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    /// <summary>Run non-overlapping convolutions (kernel = stride, no padding, one group: ConvNeXt's stem and
    /// downsamples) as a reshape and one matrix product instead of oneDNN's convolution. The trainer turns it on when
    /// <see cref="Training.KernelCheck"/> finds oneDNN's kernels wrong on this CPU (libtorch 2.10's AVX2 path);
    /// process-wide, off by default (oneDNN is faster where it is right). Same weights, same ONNX graph.</summary>
    public static bool PatchesAsMatMul { get; set; }

    public override Tensor forward(Tensor x) =>
        PatchesAsMatMul && Kernel == Stride && Padding == 0 && Groups == 1
            ? ForwardAsMatMul(x)
            : F.conv2d(x, Weight, Bias, strides: [Stride, Stride], padding: [Padding, Padding], groups: Groups);

    /// <summary>x [N, C, H, W] cut into k x k patches (a remainder row/column dropped, as the convolution does), each
    /// patch (c, kh, kw) times the weight [O, C*k*k]; returned as [N, O, H/k, W/k] with channels-last strides.</summary>
    internal Tensor ForwardAsMatMul(Tensor x)
    {
        long n = x.shape[0], c = x.shape[1], k = Kernel, ho = x.shape[2] / k, wo = x.shape[3] / k, o = Weight.shape[0];
        var patches = x.narrow(2, 0, ho * k).narrow(3, 0, wo * k)
            .reshape(n, c, ho, k, wo, k).permute(0, 2, 4, 1, 3, 5).reshape(n * ho * wo, c * k * k);
        var y = patches.matmul(Weight.reshape(o, c * k * k).t());
        if (Bias is { } b)
        {
            y = y.add(b, Scalars.One); // a long-lived alpha: add(b) alone makes a temporary Scalar the GC may free mid-call
        }

        return y.reshape(n, ho, wo, o).permute(0, 3, 1, 2);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x) =>
        g.Node("Conv", Bias is null ? [x, g.Weight(Weight)] : [x, g.Weight(Weight), g.Weight(Bias)], null,
            Ints("kernel_shape", Kernel, Kernel), Ints("strides", Stride, Stride),
            Ints("pads", Padding, Padding, Padding, Padding), Ints("dilations", 1, 1), Int("group", Groups));
}

/// <summary>LayerNorm over channels. <see cref="ChannelsFirst"/>: input [N,C,H,W] (timm's LayerNorm2d), else
/// the channel axis is last. Parameters "weight", "bias". Not thread-safe.</summary>
internal sealed class LayerNormLayer : nn.Module<Tensor, Tensor>
{
    public LayerNormLayer(string name, int channels, double eps, bool channelsFirst)
        : base(name)
    {
        Channels = channels;
        Eps = eps;
        ChannelsFirst = channelsFirst;
        register_parameter("weight", new Parameter(ones(channels)));
        register_parameter("bias", new Parameter(zeros(channels)));
    }

    // Looked up on every use: Module.to(device/dtype) replaces registered parameters, so a stored reference
    // would point at a disposed tensor after moving the model.
    public Parameter Weight => get_parameter("weight")!;
    public Parameter Bias => get_parameter("bias")!;
    public int Channels { get; }
    public double Eps { get; }
    public bool ChannelsFirst { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        if (!ChannelsFirst)
        {
            return F.layer_norm(x, [Channels], Weight, Bias, Eps);
        }

        using var nhwc = x.permute(0, 2, 3, 1);
        using var normed = F.layer_norm(nhwc, [Channels], Weight, Bias, Eps);
        return normed.permute(0, 3, 1, 2);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var input = ChannelsFirst ? g.Node("Transpose", [x], null, Ints("perm", 0, 2, 3, 1)) : x;
        var y = g.Node("LayerNormalization", [input, g.Weight(Weight), g.Weight(Bias)], null,
            Int("axis", -1), Float("epsilon", (float)Eps));
        return ChannelsFirst ? g.Node("Transpose", [y], null, Ints("perm", 0, 3, 1, 2)) : y;
    }
}

/// <summary>A block's MLP (ConvNeXt's and ViT's): fc1 (C -> 4C), exact GELU, fc2 (4C -> C), on the last axis. Names "fc1",
/// "fc2". Deliberately Linear (MKL sgemm), not 1x1 convolutions: libtorch 2.10's oneDNN 1x1 convolution gives wrong
/// outputs for some shapes on the dev machine (ConvKernelTests), though it would be faster. Not thread-safe.</summary>
internal sealed class MlpLayer : nn.Module<Tensor, Tensor>
{
    public MlpLayer(int dim, bool convShaped)
        : base("mlp")
    {
        Fc1 = new LinearLayer("fc1", dim, 4 * dim, convShaped);
        Fc2 = new LinearLayer("fc2", 4 * dim, dim, convShaped);
        register_module("fc1", Fc1);
        register_module("fc2", Fc2);
    }

    public LinearLayer Fc1 { get; }
    public LinearLayer Fc2 { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var h = Fc1.forward(x);
        using var a = F.gelu(h);
        return Fc2.forward(a);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x) => Fc2.ToOnnx(g, g.Gelu(Fc1.ToOnnx(g, x)));
}

/// <summary>A fully connected layer acting on the last axis. With <see cref="ConvShaped"/> the weight is stored
/// as [out, in, 1, 1] (timm's 1x1-conv MLP of atto..nano) but applied as the identical matrix product.
/// Parameters "weight", "bias". Not thread-safe.</summary>
internal sealed class LinearLayer : nn.Module<Tensor, Tensor>
{
    public LinearLayer(string name, int inFeatures, int outFeatures, bool convShaped = false)
        : base(name)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        ConvShaped = convShaped;
        register_parameter("weight", new Parameter(convShaped ? empty(outFeatures, inFeatures, 1, 1) : empty(outFeatures, inFeatures)));
        register_parameter("bias", new Parameter(zeros(outFeatures)));
        Init.TruncNormal(Weight);
    }

    // Looked up on every use: Module.to(device/dtype) replaces registered parameters, so a stored reference
    // would point at a disposed tensor after moving the model.
    public Parameter Weight => get_parameter("weight")!;
    public Parameter Bias => get_parameter("bias")!;
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public bool ConvShaped { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        if (!ConvShaped)
        {
            return F.linear(x, Weight, Bias);
        }

        using var w = Weight.view(OutFeatures, InFeatures);
        return F.linear(x, w, Bias);
    }

    /// <summary>The weight as an [out, in] matrix (a view for conv-shaped weights).</summary>
    public Tensor Matrix() => ConvShaped ? Weight.view(OutFeatures, InFeatures) : Weight.alias();

    /// <summary>x @ W^T + b on the last axis (any rank); W^T is stored (as "weight_t") so MatMul needs no transpose.</summary>
    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        using var m = Matrix();
        using var wt = m.t();
        var mm = g.Node("MatMul", [x, g.Initializer(g.NameOf(Weight) + "_t", wt)]);
        return g.Node("Add", [mm, g.Weight(Bias)]);
    }
}

/// <summary>BatchNorm over the channel axis of [N,C,H,W] (any memory layout). Parameters "weight", "bias"; buffers
/// "running_mean", "running_var", "num_batches_tracked" as PyTorch's BatchNorm2d. Batch statistics in training mode,
/// running statistics in eval mode. Not thread-safe.</summary>
internal sealed class BatchNormLayer : nn.Module<Tensor, Tensor>
{
    public BatchNormLayer(string name, int channels, double eps = 1e-5, double momentum = 0.1)
        : base(name)
    {
        Channels = channels;
        Eps = eps;
        Momentum = momentum;
        Weight = new Parameter(ones(channels));
        Bias = new Parameter(zeros(channels));
        RunningMean = zeros(channels);
        RunningVar = ones(channels);
        BatchesTracked = zeros(1, dtype: ScalarType.Int64).squeeze();
        register_parameter("weight", Weight);
        register_parameter("bias", Bias);
        register_buffer("running_mean", RunningMean);
        register_buffer("running_var", RunningVar);
        register_buffer("num_batches_tracked", BatchesTracked);
    }

    public int Channels { get; }
    public double Eps { get; }
    public double Momentum { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }
    public Tensor RunningMean { get; }
    public Tensor RunningVar { get; }
    public Tensor BatchesTracked { get; }

    /// <summary>Components are registered explicitly under PyTorch's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        if (training)
        {
            using var _ = no_grad();
            BatchesTracked.add_(Scalars.OneLong, Scalars.OneLong);
        }

        return F.batch_norm(x, RunningMean, RunningVar, Weight, Bias, training, Momentum, Eps);
    }

    /// <summary>Inference-mode BatchNormalization with the running statistics.</summary>
    public string ToOnnx(OnnxGraphBuilder g, string x) =>
        g.Node("BatchNormalization",
            [x, g.Weight(Weight), g.Weight(Bias), g.Weight(RunningMean), g.Weight(RunningVar)], null,
            Float("epsilon", (float)Eps), Float("momentum", (float)(1 - Momentum)));
}

/// <summary>Stochastic depth per sample (timm's drop_path): in training, keep the residual branch with probability
/// 1-p and rescale it by 1/(1-p); the identity in eval mode. Stateless.</summary>
internal static class DropPath
{
    public static Tensor Apply(Tensor branch, double rate, bool training)
    {
        if (!training || rate <= 0)
        {
            return branch.alias();
        }

        var keep = 1.0 - rate;
        var shape = new long[branch.dim()];
        Array.Fill(shape, 1L);
        shape[0] = branch.shape[0];
        using var mask = bernoulli(full(shape, keep, dtype: branch.dtype, device: branch.device)).div_(keep);
        return branch.mul(mask);
    }
}

/// <summary>Weight initialisation as timm does it for ConvNeXt: trunc_normal_(std=0.02, a=-2, b=2).</summary>
internal static class Init
{
    /// <summary>He/Kaiming normal with fan_out and ReLU gain (timm's ResNet convolutions): std = sqrt(2 / (out * k * k)).</summary>
    public static void KaimingNormalFanOut(Tensor w)
    {
        using var _ = no_grad();
        var fanOut = w.shape[0] * (w.dim() > 2 ? w.shape[2] * w.shape[3] : 1);
        w.normal_(0.0, Math.Sqrt(2.0 / fanOut));
    }

    public static void TruncNormal(Tensor w)
    {
        // timm's bounds are absolute (+-2 = 100 standard deviations), so the truncation never bites and a normal
        // draw is the same distribution. TorchSharp 0.107's trunc_normal_ can emit NaN (erfinv at +-1), hence not used.
        using var _ = no_grad();
        w.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
    }
}
