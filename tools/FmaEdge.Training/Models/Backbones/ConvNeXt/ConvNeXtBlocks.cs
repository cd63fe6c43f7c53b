using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Models;

/// <summary>ConvNeXt block: x + drop_path(gamma * mlp(LN(dwconv7x7(x)))), on [N,C,H,W]. Names as timm:
/// conv_dw, norm, mlp.fc1, mlp.fc2, gamma. Not thread-safe.</summary>
internal sealed class ConvNeXtBlock : nn.Module<Tensor, Tensor>
{
    public ConvNeXtBlock(int dim, bool convMlp, double dropPath, double layerScaleInit = 1e-6)
        : base("block")
    {
        Dim = dim;
        DropPath = dropPath;
        ConvDw = new Conv2dLayer("conv_dw", dim, dim, 7, 1, 3, dim);
        Norm = new LayerNormLayer("norm", dim, 1e-6, channelsFirst: false);
        Mlp = new MlpLayer(dim, convMlp);
        register_module("conv_dw", ConvDw);
        register_module("norm", Norm);
        register_module("mlp", Mlp);
        register_parameter("gamma", new Parameter(full(dim, layerScaleInit)));
    }

    public int Dim { get; }
    public double DropPath { get; }
    public Conv2dLayer ConvDw { get; }
    public LayerNormLayer Norm { get; }
    public MlpLayer Mlp { get; }
    /// <summary>Looked up on use: Module.to replaces registered parameters.</summary>
    public Parameter Gamma => get_parameter("gamma")!;

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var dw = ConvDw.forward(x);
        using var nhwc = dw.permute(0, 2, 3, 1);
        using var n = Norm.forward(nhwc);
        using var m = Mlp.forward(n);
        using var scaled = m.mul(Gamma);
        using var back = scaled.permute(0, 3, 1, 2);
        using var branch = Models.DropPath.Apply(back, DropPath, training);
        return x.add(branch, Scalars.One);
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var dw = ConvDw.ToOnnx(g, x);
        var nhwc = g.Node("Transpose", [dw], null, Ints("perm", 0, 2, 3, 1));
        var n = Norm.ToOnnx(g, nhwc);
        var m = Mlp.ToOnnx(g, n);
        var scaled = g.Node("Mul", [m, g.Weight(Gamma)]);
        var nchw = g.Node("Transpose", [scaled], null, Ints("perm", 0, 3, 1, 2));
        return g.Node("Add", [x, nchw]);
    }
}

/// <summary>One stage: an optional downsample (LayerNorm2d + conv 2x2 stride 2; names downsample.0/1) then blocks.</summary>
internal sealed class ConvNeXtStage : nn.Module<Tensor, Tensor>
{
    public ConvNeXtStage(int inDim, int outDim, int depth, bool downsample, bool convMlp, IReadOnlyList<double> dropPaths)
        : base("stage")
    {
        if (downsample)
        {
            DownNorm = new LayerNormLayer("0", inDim, 1e-6, channelsFirst: true);
            DownConv = new Conv2dLayer("1", inDim, outDim, 2, 2, 0, 1);
            register_module("downsample", nn.Sequential(("0", (nn.Module<Tensor, Tensor>)DownNorm), ("1", DownConv)));
        }

        Blocks = Enumerable.Range(0, depth).Select(b => new ConvNeXtBlock(outDim, convMlp, dropPaths[b])).ToList();
        register_module("blocks", new ModuleList<ConvNeXtBlock>(Blocks.ToArray()));
    }

    public LayerNormLayer? DownNorm { get; }
    public Conv2dLayer? DownConv { get; }
    public IReadOnlyList<ConvNeXtBlock> Blocks { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        var h = x.alias();
        if (DownNorm is not null && DownConv is not null)
        {
            using var n = DownNorm.forward(h);
            h.Dispose();
            h = DownConv.forward(n);
        }

        foreach (var block in Blocks)
        {
            var next = block.forward(h);
            h.Dispose();
            h = next;
        }

        return h;
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        if (DownNorm is not null && DownConv is not null)
        {
            x = DownConv.ToOnnx(g, DownNorm.ToOnnx(g, x));
        }

        foreach (var block in Blocks)
        {
            x = block.ToOnnx(g, x);
        }

        return x;
    }
}
