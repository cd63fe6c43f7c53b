using FmaEdge.Training.Export;
using TorchSharp;
using TorchSharp.Modules;
using static FmaEdge.Training.Export.OnnxGraphBuilder;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Models;

/// <summary>How per-level logits are made from the pooled, normed backbone feature.</summary>
public enum HeadKind
{
    /// <summary>One leaf head; an upper-level logit is the logsumexp of its leaves' logits, so its softmax
    /// is the sum of the leaf probabilities (consistent by construction).</summary>
    Flat,

    /// <summary>One linear head per level, each from the backbone feature (the seed's independent variant).</summary>
    Independent,

    /// <summary>Per level a hidden h_l = GELU(Linear(in_l, H)) and logits_l = Linear(H, n_l); a child level's
    /// input is the feature concatenated with its parent level's h (the seed's shared variant).</summary>
    Shared,
}

/// <summary>Parsing and naming of <see cref="HeadKind"/> ("flat", "independent", "shared").</summary>
public static class HeadKinds
{
    public static HeadKind Parse(string s) => s.Trim().ToLowerInvariant() switch
    {
        "flat" => HeadKind.Flat,
        "independent" => HeadKind.Independent,
        "shared" => HeadKind.Shared,
        _ => throw new ArgumentException($"unknown head '{s}'; choose flat, independent or shared", nameof(s)),
    };

    public static string Name(this HeadKind k) => k.ToString().ToLowerInvariant();
}

/// <summary>The classifier head ("head" in timm naming: head.norm then our level layers). Input: pooled
/// features [N, C]; output: logits per level, coarse to fine. Not thread-safe.</summary>
internal sealed class HierarchicalHead : nn.Module<Tensor, Tensor[]>
{
    /// <summary>Stands for minus infinity in the flat head's log-masks; exp() of it is exactly 0 in float.</summary>
    internal const float LogZero = -1e30f;

    public HierarchicalHead(int featureDim, HeadKind kind, IReadOnlyList<int> levelSizes, IReadOnlyList<float[,]> leafToLevel, int hidden)
        : base("head")
    {
        Kind = kind;
        LevelSizes = levelSizes.ToArray();
        Hidden = hidden;
        Norm = new LayerNormLayer("norm", featureDim, 1e-6, channelsFirst: false);
        register_module("norm", Norm);
        switch (kind)
        {
            case HeadKind.Flat:
                Fc = [new LinearLayer("fc", featureDim, LevelSizes[^1])];
                register_module("fc", Fc[0]);
                LogMasks = new Tensor[LevelSizes.Length - 1];
                for (var l = 0; l < LevelSizes.Length - 1; l++)
                {
                    var m = leafToLevel[l];
                    var data = new float[m.GetLength(0) * m.GetLength(1)];
                    for (var i = 0; i < m.GetLength(0); i++)
                    {
                        for (var j = 0; j < m.GetLength(1); j++)
                        {
                            data[(i * m.GetLength(1)) + j] = m[i, j] > 0 ? 0f : LogZero;
                        }
                    }

                    LogMasks[l] = tensor(data, [m.GetLength(0), m.GetLength(1)]);
                    register_buffer($"logmask{l}", LogMasks[l], persistent: false);
                }

                break;
            case HeadKind.Independent:
                Fc = LevelSizes.Select((n, l) => new LinearLayer($"{l}", featureDim, n)).ToArray();
                register_module("fc", new ModuleList<LinearLayer>(Fc));
                break;
            case HeadKind.Shared:
                HiddenLayers = LevelSizes.Select((_, l) => new LinearLayer($"{l}", l == 0 ? featureDim : featureDim + hidden, hidden)).ToArray();
                Fc = LevelSizes.Select((n, l) => new LinearLayer($"{l}", hidden, n)).ToArray();
                register_module("hidden", new ModuleList<LinearLayer>(HiddenLayers));
                register_module("fc", new ModuleList<LinearLayer>(Fc));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    public HeadKind Kind { get; }
    public int[] LevelSizes { get; }
    public int Hidden { get; }
    public LayerNormLayer Norm { get; }
    public LinearLayer[] Fc { get; }
    public LinearLayer[]? HiddenLayers { get; }
    public Tensor[]? LogMasks { get; }

    /// <summary>Components are registered explicitly under timm's names; reflection would add duplicates
    /// named after the C# properties (and PyBridge/state_dict would export them).</summary>
    protected override void RegisterComponents()
    {
    }

    public override Tensor[] forward(Tensor pooled)
    {
        using var feat = Norm.forward(pooled);
        var outputs = new Tensor[LevelSizes.Length];
        switch (Kind)
        {
            case HeadKind.Flat:
                var leaf = Fc[0].forward(feat);
                for (var l = 0; l < LevelSizes.Length - 1; l++)
                {
                    // logits_l[n, a] = logsumexp over leaves c of (z[n, c] + logmask[c, a]).
                    using var z = leaf.unsqueeze(2);
                    using var masked = z.add(LogMasks![l], Scalars.One);
                    outputs[l] = masked.logsumexp(1, keepdim: false);
                }

                outputs[^1] = leaf;
                break;
            case HeadKind.Independent:
                for (var l = 0; l < LevelSizes.Length; l++)
                {
                    outputs[l] = Fc[l].forward(feat);
                }

                break;
            default:
                Tensor? parentHidden = null;
                for (var l = 0; l < LevelSizes.Length; l++)
                {
                    Tensor h;
                    if (parentHidden is null)
                    {
                        using var pre = HiddenLayers![l].forward(feat);
                        h = F.gelu(pre);
                    }
                    else
                    {
                        using var cat = torch.cat([feat, parentHidden], 1);
                        using var pre = HiddenLayers![l].forward(cat);
                        h = F.gelu(pre);
                        parentHidden.Dispose();
                    }

                    outputs[l] = Fc[l].forward(h);
                    parentHidden = h;
                }

                parentHidden?.Dispose();
                break;
        }

        return outputs;
    }

    /// <summary>The same heads as ONNX nodes on the pooled feature <paramref name="pooled"/>; returns the logits' value
    /// names per level.</summary>
    public string[] ToOnnx(OnnxGraphBuilder g, string pooled)
    {
        var feat = Norm.ToOnnx(g, pooled);
        var outputs = new string[LevelSizes.Length];
        switch (Kind)
        {
            case HeadKind.Flat:
                var leaf = Fc[0].ToOnnx(g, feat);
                var axis2 = g.Int64Initializer("axes_2", [2]);
                var z = g.Node("Unsqueeze", [leaf, axis2]);
                for (var l = 0; l < LevelSizes.Length - 1; l++)
                {
                    // Not in the state dict (a non-persistent buffer), so named here as registered above.
                    var masked = g.Node("Add", [z, g.Initializer($"head.logmask{l}", LogMasks![l])]);
                    outputs[l] = g.Node("ReduceLogSumExp", [masked], null, Ints("axes", 1), Int("keepdims", 0));
                }

                outputs[^1] = leaf;
                break;
            case HeadKind.Independent:
                for (var l = 0; l < LevelSizes.Length; l++)
                {
                    outputs[l] = Fc[l].ToOnnx(g, feat);
                }

                break;
            default:
                string? parent = null;
                for (var l = 0; l < LevelSizes.Length; l++)
                {
                    var input = parent is null ? feat : g.Node("Concat", [feat, parent], null, Int("axis", 1));
                    var h = g.Gelu(HiddenLayers![l].ToOnnx(g, input));
                    outputs[l] = Fc[l].ToOnnx(g, h);
                    parent = h;
                }

                break;
        }

        return outputs;
    }
}
