using FmaEdge.Core.Taxonomy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FmaEdge.Training.Models;

/// <summary>What defines a model's shape: backbone size, head, level sizes and input size. Persisted in
/// checkpoints so a checkpoint alone can be exported. Immutable.</summary>
public sealed record ModelConfig
{
    /// <summary>A backbone of <see cref="Backbones.Names"/> (ConvNeXt sizes, resnet50_cbam, vit_tiny, vit_small).</summary>
    public string Model { get; init; } = "convnext_atto";
    public string Head { get; init; } = "independent";
    public int HeadHidden { get; init; } = 256;
    public double DropPath { get; init; }
    public int ImageSize { get; init; } = 112;

    /// <summary>Throws <see cref="ArgumentException"/> for an unknown model/head or a bad size.</summary>
    public void Validate()
    {
        var family = Backbones.Family(Model);
        _ = HeadKinds.Parse(Head);
        // ConvNeXt downsamples by 32 overall (stages floor odd sizes, e.g. 112 -> 28 -> 14 -> 7 -> 3).
        if (ImageSize is < 32 or > 4096)
        {
            throw new ArgumentException($"image size {ImageSize} is outside 32..4096");
        }

        if (family == BackboneFamily.Vit && ImageSize % VitSpec.PatchSize != 0)
        {
            throw new ArgumentException($"{Model} cuts the image into {VitSpec.PatchSize}-pixel patches: the image size must be a multiple of {VitSpec.PatchSize} (got {ImageSize})");
        }

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

/// <summary>A backbone with a hierarchical head (the name is historical: it hosts every <see cref="BackboneFamily"/>).
/// ConvNeXt with timm parameter names stem.0/1, stages.{s}.downsample.0/1, stages.{s}.blocks.{b}.*; ResNet-50+CBAM
/// (<see cref="ResNetCbam"/>: conv1, bn1, layer1..4); ViT (<see cref="VisionTransformer"/>: patch_embed, cls_token,
/// pos_embed, blocks, norm); then head.norm and the level heads. Input [N,3,H,W] normalised images; output logits
/// per level, coarse to fine. Not thread-safe (TorchSharp modules are not).</summary>
public sealed class HierarchicalConvNeXt : nn.Module<Tensor, Tensor[]>
{
    public HierarchicalConvNeXt(ModelConfig config, CategoryTree tree)
        : base("HierarchicalConvNeXt")
    {
        config.Validate();
        Config = config;
        Family = Backbones.Family(config.Model);
        HeadKind = HeadKinds.Parse(config.Head);
        LevelSizes = tree.LevelSizes;
        var maps = Enumerable.Range(0, tree.Depth).Select(tree.LeafToLevelMatrix).ToList();
        if (Family != BackboneFamily.ConvNeXt)
        {
            int featureDim;
            if (Family == BackboneFamily.ResNetCbam)
            {
                // libtorch 2.10's oneDNN kernels give NaN gradients for this network on the dev machine at random steps
                // (ResNetTrainingTests: 3 of 12 cases per run with oneDNN, none without). The backward pass picks its
                // kernels when it runs, so oneDNN stays off for the process while a ResNet model exists.
                _oneDnnToRestore = Native.NativeTuning.SetOneDnn(false);
                ResNet = new ResNetCbam(config.DropPath);
                foreach (var (name, module) in ResNet.Modules())
                {
                    register_module(name, module);
                }

                featureDim = ResNet.FeatureDim;
            }
            else
            {
                Vit = new VisionTransformer(Backbones.Vit(config.Model), config.ImageSize, config.DropPath);
                foreach (var (name, p) in Vit.Parameters())
                {
                    register_parameter(name, p);
                }

                foreach (var (name, module) in Vit.Modules())
                {
                    register_module(name, module);
                }

                featureDim = Vit.FeatureDim;
            }

            FeatureDim = featureDim;
            Head = new HierarchicalHead(featureDim, HeadKind, LevelSizes, maps, config.HeadHidden);
            register_module("head", Head);
            return;
        }

        Spec = ConvNeXtSpec.Get(config.Model);
        FeatureDim = Spec.FeatureDim;
        var dims = Spec.Dims;

        StemConv = new Conv2dLayer("0", 3, dims[0], 4, 4, 0, 1);
        StemNorm = new LayerNormLayer("1", dims[0], 1e-6, channelsFirst: true);
        register_module("stem", nn.Sequential(("0", (nn.Module<Tensor, Tensor>)StemConv), ("1", StemNorm)));

        // Drop-path rates rise linearly over all blocks, as in timm.
        var total = Spec.Depths.Sum();
        var rates = Enumerable.Range(0, total).Select(i => total == 1 ? 0 : config.DropPath * i / (total - 1)).ToArray();
        var stages = new List<ConvNeXtStage>();
        var offset = 0;
        for (var s = 0; s < 4; s++)
        {
            var inDim = s == 0 ? dims[0] : dims[s - 1];
            stages.Add(new ConvNeXtStage(inDim, dims[s], Spec.Depths[s], downsample: s > 0, Spec.ConvMlp, rates[offset..(offset + Spec.Depths[s])]));
            offset += Spec.Depths[s];
        }

        Stages = stages;
        register_module("stages", new ModuleList<ConvNeXtStage>(stages.ToArray()));

        Head = new HierarchicalHead(Spec.FeatureDim, HeadKind, LevelSizes, maps, config.HeadHidden);
        register_module("head", Head);
    }

    private readonly bool? _oneDnnToRestore;

    protected override void Dispose(bool disposing)
    {
        if (_oneDnnToRestore is bool previous)
        {
            Native.NativeTuning.SetOneDnn(previous);
        }

        base.Dispose(disposing);
    }

    public ModelConfig Config { get; }
    public BackboneFamily Family { get; }

    /// <summary>The ConvNeXt size; null for other backbones.</summary>
    public ConvNeXtSpec? Spec { get; }

    /// <summary>The ResNet-50+CBAM backbone when <see cref="Family"/> is ResNetCbam, else null.</summary>
    public ResNetCbam? ResNet { get; }

    /// <summary>The ViT backbone when <see cref="Family"/> is Vit, else null.</summary>
    public VisionTransformer? Vit { get; }

    /// <summary>Width of the pooled feature the head reads.</summary>
    public int FeatureDim { get; }

    public HeadKind HeadKind { get; }
    public int[] LevelSizes { get; }

    // ConvNeXt parts (null for other backbones; ConvNeXtGraph reads them only for ConvNeXt).
    internal Conv2dLayer StemConv { get; } = null!;
    internal LayerNormLayer StemNorm { get; } = null!;
    internal IReadOnlyList<ConvNeXtStage> Stages { get; } = [];
    internal HierarchicalHead Head { get; }

    /// <summary>Parameters of the backbone alone (everything outside head.*), or of the whole model.</summary>
    public long ParameterCount(bool backboneOnly = false) =>
        named_parameters().Where(p => !backboneOnly || !p.name.StartsWith("head.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());

    /// <summary>The pooled feature [N, FeatureDim] the head reads (global average pool, or ViT's class token).</summary>
    public Tensor ForwardPooled(Tensor x)
    {
        if (ResNet is not null)
        {
            return ResNet.ForwardPooled(x);
        }

        if (Vit is not null)
        {
            return Vit.ForwardPooled(x);
        }

        using var features = ForwardFeatures(x);
        return features.mean([2L, 3L]);
    }

    /// <summary>ConvNeXt's backbone output [N, C, H/32, W/32] (ConvNeXt only).</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        if (Family != BackboneFamily.ConvNeXt)
        {
            throw new InvalidOperationException($"ForwardFeatures is ConvNeXt's; {Config.Model} gives ForwardPooled");
        }

        // Run channels-last (NCHW shape, NHWC memory): oneDNN's depthwise 7x7 convolutions are much faster so, and
        // the per-block permutes to NHWC for LayerNorm and the MLP become free views instead of copies.
        using var nhwc = x.permute(0, 2, 3, 1).contiguous();
        using var channelsLast = nhwc.permute(0, 3, 1, 2);
        using var s0 = StemConv.forward(channelsLast);
        var h = StemNorm.forward(s0);
        foreach (var stage in Stages)
        {
            var next = stage.forward(h);
            h.Dispose();
            h = next;
        }

        return h;
    }

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
}
