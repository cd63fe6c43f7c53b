using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace FmaEdge.Training.Models;

/// <summary>ConvNeXt atto..small (Liu et al. 2022) with timm's parameter names: stem.0/1, stages.{s}.downsample.0/1,
/// stages.{s}.blocks.{b}.*. The feature is the global average of the last stage. Not thread-safe.</summary>
internal sealed class ConvNeXtBackbone : Backbone
{
    public ConvNeXtBackbone(ConvNeXtSpec spec, double dropPath)
    {
        Spec = spec;
        var dims = spec.Dims;
        StemConv = new Conv2dLayer("0", 3, dims[0], 4, 4, 0, 1);
        StemNorm = new LayerNormLayer("1", dims[0], 1e-6, channelsFirst: true);

        // Drop-path rates rise linearly over all blocks, as in timm.
        var total = spec.Depths.Sum();
        var rates = Enumerable.Range(0, total).Select(i => total == 1 ? 0 : dropPath * i / (total - 1)).ToArray();
        var stages = new List<ConvNeXtStage>();
        var offset = 0;
        for (var s = 0; s < 4; s++)
        {
            var inDim = s == 0 ? dims[0] : dims[s - 1];
            stages.Add(new ConvNeXtStage(inDim, dims[s], spec.Depths[s], downsample: s > 0, spec.ConvMlp, rates[offset..(offset + spec.Depths[s])]));
            offset += spec.Depths[s];
        }

        Stages = stages;
    }

    public ConvNeXtSpec Spec { get; }
    public override int FeatureDim => Spec.FeatureDim;
    public Conv2dLayer StemConv { get; }
    public LayerNormLayer StemNorm { get; }
    public IReadOnlyList<ConvNeXtStage> Stages { get; }

    public override IEnumerable<(string Name, nn.Module Module)> Modules()
    {
        yield return ("stem", nn.Sequential(("0", (nn.Module<Tensor, Tensor>)StemConv), ("1", StemNorm)));
        yield return ("stages", new ModuleList<ConvNeXtStage>(Stages.ToArray()));
    }

    public override Tensor ForwardPooled(Tensor x)
    {
        using var features = ForwardFeatures(x);
        return features.mean([2L, 3L]);
    }

    /// <summary>The last stage's output [N, C, H/32, W/32].</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
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

    public override string ToOnnx(OnnxGraphBuilder g, string input)
    {
        var x = StemNorm.ToOnnx(g, StemConv.ToOnnx(g, input));
        foreach (var stage in Stages)
        {
            x = stage.ToOnnx(g, x);
        }

        return g.Node("ReduceMean", [x], null, Ints("axes", 2, 3), Int("keepdims", 0));
    }
}
