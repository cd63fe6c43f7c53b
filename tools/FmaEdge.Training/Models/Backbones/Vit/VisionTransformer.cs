using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Models;

/// <summary>Multi-head self-attention (timm's Attention): qkv linear, softmax(q k^T / sqrt(d)) v, proj. Names
/// "qkv", "proj". Input/output [N, L, C]. Not thread-safe.</summary>
internal sealed class VitAttention : nn.Module<Tensor, Tensor>
{
    public VitAttention(int dim, int heads)
        : base("attn")
    {
        Dim = dim;
        Heads = heads;
        HeadDim = dim / heads;
        _scale = Scale.ToScalar();
        Qkv = new LinearLayer("qkv", dim, 3 * dim);
        Proj = new LinearLayer("proj", dim, dim);
        register_module("qkv", Qkv);
        register_module("proj", Proj);
    }

    public int Dim { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public LinearLayer Qkv { get; }
    public LinearLayer Proj { get; }

    /// <summary>The logit scale 1/sqrt(head dim), applied to q (as timm does).</summary>
    public float Scale => 1f / MathF.Sqrt(HeadDim);

    // Kept alive with the module: a temporary Scalar can be freed during the native call (see Scalars).
    private readonly TorchSharp.Scalar _scale;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _scale.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var n = x.shape[0];
        var l = x.shape[1];
        var qkv = Qkv.forward(x).reshape(n, l, 3, Heads, HeadDim).permute(2, 0, 3, 1, 4);
        var q = qkv[0].mul(_scale);
        var k = qkv[1];
        var v = qkv[2];
        var attn = q.matmul(k.transpose(-2, -1)).softmax(-1);
        var o = attn.matmul(v).transpose(1, 2).reshape(n, l, Dim);
        return Proj.forward(o).MoveToOuterDisposeScope();
    }

    /// <summary>Attention as MatMul/Softmax/MatMul per head; reads the shape constants <see cref="VisionTransformer.ToOnnx"/> adds.</summary>
    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var qkv = Qkv.ToOnnx(g, x);
        var split = g.Node("Reshape", [qkv, QkvShape]);
        var heads = g.Node("Transpose", [split], null, Ints("perm", 2, 0, 3, 1, 4)); // [3, N, H, L, D]
        var q = g.Node("Gather", [heads, g.Int64Scalar("index_0", 0)], null, Int("axis", 0));
        var k = g.Node("Gather", [heads, g.Int64Scalar("index_1", 1)], null, Int("axis", 0));
        var v = g.Node("Gather", [heads, g.Int64Scalar("index_2", 2)], null, Int("axis", 0));
        var qs = g.Node("Mul", [q, g.Scalar(Scale)]);
        var kt = g.Node("Transpose", [k], null, Ints("perm", 0, 1, 3, 2));
        var scores = g.Node("Softmax", [g.Node("MatMul", [qs, kt])], null, Int("axis", -1));
        var o = g.Node("MatMul", [scores, v]);                                              // [N, H, L, D]
        var merged = g.Node("Reshape", [g.Node("Transpose", [o], null, Ints("perm", 0, 2, 1, 3)), TokensShape]);
        return Proj.ToOnnx(g, merged);
    }

    /// <summary>Names of the graph's int64 shapes [0, -1, 3, heads, head dim] and [0, -1, dim].</summary>
    internal const string QkvShape = "shape_qkv";
    internal const string TokensShape = "shape_tokens";
}

/// <summary>Pre-norm transformer block: x + attn(norm1 x), then x + mlp(norm2 x) (exact GELU, ratio 4), LayerNorm
/// eps 1e-6. Names norm1, attn.*, norm2, mlp.fc1, mlp.fc2. Not thread-safe.</summary>
internal sealed class VitBlock : nn.Module<Tensor, Tensor>
{
    public VitBlock(int dim, int heads, double dropPath)
        : base("block")
    {
        DropPathRate = dropPath;
        Norm1 = new LayerNormLayer("norm1", dim, 1e-6, channelsFirst: false);
        Attn = new VitAttention(dim, heads);
        Norm2 = new LayerNormLayer("norm2", dim, 1e-6, channelsFirst: false);
        Mlp = new MlpLayer(dim, convShaped: false);
        register_module("norm1", Norm1);
        register_module("attn", Attn);
        register_module("norm2", Norm2);
        register_module("mlp", Mlp);
    }

    public double DropPathRate { get; }
    public LayerNormLayer Norm1 { get; }
    public VitAttention Attn { get; }
    public LayerNormLayer Norm2 { get; }
    public MlpLayer Mlp { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates.</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = DropPath.Apply(Attn.forward(Norm1.forward(x)), DropPathRate, training);
        var h = x.add(a, Scalars.One);
        var m = DropPath.Apply(Mlp.forward(Norm2.forward(h)), DropPathRate, training);
        return h.add(m, Scalars.One).MoveToOuterDisposeScope();
    }

    public string ToOnnx(OnnxGraphBuilder g, string x)
    {
        var a = Attn.ToOnnx(g, Norm1.ToOnnx(g, x));
        var h = g.Node("Add", [x, a]);
        var m = Mlp.ToOnnx(g, Norm2.ToOnnx(g, h));
        return g.Node("Add", [h, m]);
    }
}

/// <summary>Vision Transformer (Dosovitskiy et al. 2021; timm's VisionTransformer with class token): patch 16
/// embedding, a learned class token, a learned position embedding for the model's input grid (S/16 x S/16 + 1),
/// pre-norm blocks, final LayerNorm; the feature is the class token. timm's names (patch_embed.proj, cls_token,
/// pos_embed, blocks.{i}.*, norm). Not thread-safe.</summary>
internal sealed class VisionTransformer : Backbone
{
    public VisionTransformer(VitSpec spec, int imageSize, double dropPath)
    {
        if (imageSize % VitSpec.PatchSize != 0)
        {
            throw new ArgumentException($"a ViT needs an image size that is a multiple of {VitSpec.PatchSize}; {imageSize} is not");
        }

        Spec = spec;
        Grid = imageSize / VitSpec.PatchSize;
        PatchEmbed = new Conv2dLayer("proj", 3, spec.Dim, VitSpec.PatchSize, VitSpec.PatchSize, 0, 1);
        ClsToken = new Parameter(zeros(1, 1, spec.Dim));
        PosEmbed = new Parameter(zeros(1, 1 + (Grid * Grid), spec.Dim));
        Blocks = Enumerable.Range(0, spec.Depth)
            .Select(i => new VitBlock(spec.Dim, spec.Heads, spec.Depth == 1 ? 0 : dropPath * i / (spec.Depth - 1))).ToArray();
        Norm = new LayerNormLayer("norm", spec.Dim, 1e-6, channelsFirst: false);
        using var _ = no_grad();
        // timm: pos_embed trunc_normal(std .02), cls_token normal(std 1e-6); linear weights trunc_normal(.02) (LinearLayer's own).
        PosEmbed.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
        ClsToken.normal_(0.0, 1e-6);
    }

    public VitSpec Spec { get; }

    /// <summary>Patches per side (image size / 16).</summary>
    public int Grid { get; }

    public override int FeatureDim => Spec.Dim;
    public Conv2dLayer PatchEmbed { get; }
    public Parameter ClsToken { get; }
    public Parameter PosEmbed { get; }
    public VitBlock[] Blocks { get; }
    public LayerNormLayer Norm { get; }

    /// <summary>patch_embed, blocks, norm.</summary>
    public override IEnumerable<(string Name, nn.Module Module)> Modules()
    {
        yield return ("patch_embed", nn.Sequential(("proj", (nn.Module<Tensor, Tensor>)PatchEmbed)));
        yield return ("blocks", new ModuleList<VitBlock>(Blocks));
        yield return ("norm", Norm);
    }

    /// <summary>cls_token, pos_embed.</summary>
    public override IEnumerable<(string Name, Parameter Parameter)> Parameters()
    {
        yield return ("cls_token", ClsToken);
        yield return ("pos_embed", PosEmbed);
    }

    /// <summary>[N,3,S,S] -> class-token feature [N, dim].</summary>
    public override Tensor ForwardPooled(Tensor x)
    {
        using var scope = NewDisposeScope();
        var n = x.shape[0];
        var p = PatchEmbed.forward(x).flatten(2).transpose(1, 2);
        var cls = ClsToken.expand(n, -1, -1);
        var h = cat([cls, p], 1).add(PosEmbed, Scalars.One);
        foreach (var block in Blocks)
        {
            h = block.forward(h);
        }

        h = Norm.forward(h);
        return h.select(1, 0).MoveToOuterDisposeScope();
    }

    public override string ToOnnx(OnnxGraphBuilder g, string input)
    {
        var dim = Spec.Dim;
        var patches = PatchEmbed.ToOnnx(g, input);
        var flat = g.Node("Reshape", [patches, g.Int64Initializer("shape_patches", [0, dim, -1])]);
        var tokens = g.Node("Transpose", [flat], null, Ints("perm", 0, 2, 1));

        // Broadcast the class token to the (dynamic) batch: shape [N, 1, dim] from the input's first dimension.
        var n = g.Node("Shape", [input], null, Int("start", 0), Int("end", 1));
        var clsShape = g.Node("Concat", [n, g.Int64Initializer("shape_cls_tail", [1, dim])], null, Int("axis", 0));
        var cls = g.Node("Expand", [g.Weight(ClsToken), clsShape]);
        var x = g.Node("Concat", [cls, tokens], null, Int("axis", 1));
        x = g.Node("Add", [x, g.Weight(PosEmbed)]);

        g.Int64Initializer(VitAttention.QkvShape, [0, -1, 3, Spec.Heads, dim / Spec.Heads]);
        g.Int64Initializer(VitAttention.TokensShape, [0, -1, dim]);
        foreach (var block in Blocks)
        {
            x = block.ToOnnx(g, x);
        }

        x = Norm.ToOnnx(g, x);
        return g.Node("Gather", [x, g.Int64Scalar("index_0", 0)], null, Int("axis", 1));
    }

    /// <summary>Resamples a [1, 1 + g*g, C] position embedding (class token first) to another grid, bicubic on the
    /// patch part as timm's resample_abs_pos_embed; for loading embeddings learned at another image size.</summary>
    public static Tensor ResamplePosEmbed(Tensor posEmbed, int newGrid)
    {
        using var scope = NewDisposeScope();
        var c = posEmbed.shape[2];
        var old = (int)Math.Round(Math.Sqrt(posEmbed.shape[1] - 1));
        if (old * old != posEmbed.shape[1] - 1)
        {
            throw new ArgumentException($"position embedding of {posEmbed.shape[1]} tokens is not 1 + a square grid");
        }

        var cls = posEmbed.narrow(1, 0, 1);
        if (old == newGrid)
        {
            return posEmbed.clone().MoveToOuterDisposeScope();
        }

        var grid = posEmbed.narrow(1, 1, old * old).reshape(1, old, old, c).permute(0, 3, 1, 2);
        var resized = F.interpolate(grid, size: [newGrid, newGrid], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
        var flat = resized.permute(0, 2, 3, 1).reshape(1, newGrid * newGrid, c);
        return cat([cls, flat], 1).MoveToOuterDisposeScope();
    }
}
