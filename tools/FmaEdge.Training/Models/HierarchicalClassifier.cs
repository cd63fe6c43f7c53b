using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FmaEdge.Training.Models;

/// <summary>What defines a model's shape: backbone size, head, level sizes and input size. Persisted in
/// checkpoints so a checkpoint alone can be exported. Immutable.</summary>
public sealed record ModelConfig
{
    /// <summary>A backbone of <see cref="BackboneRegistry.Names"/> (ConvNeXt sizes, resnet50_cbam, vit_tiny, vit_small).</summary>
    public string Model { get; init; } = "convnext_atto";
    public string Head { get; init; } = "independent";
    public int HeadHidden { get; init; } = 256;
    public double DropPath { get; init; }
    public int ImageSize { get; init; } = 112;

    /// <summary>Throws <see cref="ArgumentException"/> for an unknown model/head or a bad size.</summary>
    public void Validate()
    {
        var family = BackboneRegistry.FamilyOf(Model);
        _ = HeadKinds.Parse(Head);
        // ConvNeXt downsamples by 32 overall (stages floor odd sizes, e.g. 112 -> 28 -> 14 -> 7 -> 3).
        if (ImageSize is < 32 or > 4096)
        {
            throw new ArgumentException($"image size {ImageSize} is outside 32..4096");
        }

        family.Validate(this);

        if (HeadHidden is < 1 or > 65536)
        {
            throw new ArgumentException($"head hidden size {HeadHidden} is outside 1..65536");
        }

        if (DropPath is < 0 or >= 1)
        {
            throw new ArgumentException($"drop-path rate {DropPath} is outside [0, 1)");
        }
    }
}

/// <summary>A registered backbone (<see cref="BackboneRegistry"/>) with a hierarchical head. The backbone's parameters
/// keep its family's timm names at the root (stem.*/stages.* for ConvNeXt; conv1, bn1, layer1..4 for ResNet-50+CBAM;
/// patch_embed, cls_token, pos_embed, blocks, norm for ViT); then head.norm and the level heads. Input [N,3,H,W]
/// normalised images; output logits per level, coarse to fine. Not thread-safe (TorchSharp modules are not).</summary>
public sealed class HierarchicalClassifier : nn.Module<Tensor, Tensor[]>
{
    public HierarchicalClassifier(ModelConfig config, CategoryTree tree)
        : base("HierarchicalClassifier")
    {
        config.Validate();
        Config = config;
        Family = BackboneRegistry.FamilyOf(config.Model);
        HeadKind = HeadKinds.Parse(config.Head);
        LevelSizes = tree.LevelSizes;
        var maps = Enumerable.Range(0, tree.Depth).Select(tree.LeafToLevelMatrix).ToList();
        Backbone = Family.Create(config);
        foreach (var (name, p) in Backbone.Parameters())
        {
            register_parameter(name, p);
        }

        foreach (var (name, module) in Backbone.Modules())
        {
            register_module(name, module);
        }

        Head = new HierarchicalHead(Backbone.FeatureDim, HeadKind, LevelSizes, maps, config.HeadHidden);
        register_module("head", Head);
    }

    public ModelConfig Config { get; }
    internal BackboneFamily Family { get; }
    internal Backbone Backbone { get; }

    /// <summary>Width of the pooled feature the head reads.</summary>
    public int FeatureDim => Backbone.FeatureDim;

    public HeadKind HeadKind { get; }
    public int[] LevelSizes { get; }
    internal HierarchicalHead Head { get; }

    /// <summary>Parameters of the backbone alone (everything outside head.*), or of the whole model.</summary>
    public long ParameterCount(bool backboneOnly = false) =>
        named_parameters().Where(p => !backboneOnly || !p.name.StartsWith("head.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());

    /// <summary>The pooled feature [N, FeatureDim] the head reads (global average pool, or ViT's class token).</summary>
    public Tensor ForwardPooled(Tensor x) => Backbone.ForwardPooled(x);

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor[] forward(Tensor x)
    {
        using var pooled = ForwardPooled(x);
        return Head.forward(pooled);
    }

    /// <summary>The eval-mode forward pass as ONNX nodes reading <paramref name="input"/>; returns the logits' value
    /// names per level, coarse to fine.</summary>
    internal string[] ToOnnx(OnnxGraphBuilder g, string input) => Head.ToOnnx(g, Backbone.ToOnnx(g, input));

    protected override void Dispose(bool disposing)
    {
        // Also from the finalizer: the backbone holds no managed resources, only process settings to restore.
        Backbone.Dispose();
        base.Dispose(disposing);
    }
}
