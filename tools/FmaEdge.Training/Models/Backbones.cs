namespace FmaEdge.Training.Models;

/// <summary>The kinds of backbone the trainer builds.</summary>
public enum BackboneFamily
{
    /// <summary>ConvNeXt atto..small (<see cref="ConvNeXtSpec"/>), the seed's choice.</summary>
    ConvNeXt,

    /// <summary>ResNet-50 with CBAM after every bottleneck (<see cref="ResNetCbam"/>), the seed's first model.</summary>
    ResNetCbam,

    /// <summary>Vision Transformer, patch 16 (<see cref="VitSpec"/>), the seed's second model.</summary>
    Vit,
}

/// <summary>One ViT size: width, depth and heads (patch 16, MLP ratio 4, cls token; timm vit_*_patch16). Immutable.</summary>
public sealed record VitSpec(string Name, int Dim, int Depth, int Heads)
{
    public const int PatchSize = 16;
    public const int MlpRatio = 4;

    /// <summary>The supported sizes (timm vit_tiny_patch16_224, vit_small_patch16_224).</summary>
    public static readonly IReadOnlyList<VitSpec> All =
    [
        new("vit_tiny", 192, 12, 3),
        new("vit_small", 384, 12, 6),
    ];
}

/// <summary>Every backbone name `--model` accepts, and which family each belongs to. Stateless and thread-safe.</summary>
public static class Backbones
{
    public const string ResNet50Cbam = "resnet50_cbam";

    /// <summary>Every canonical name: the ConvNeXt sizes, resnet50_cbam, vit_tiny, vit_small.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [.. ConvNeXtSpec.All.Select(s => s.Name), ResNet50Cbam, .. VitSpec.All.Select(s => s.Name)];

    /// <summary>The canonical name for "convnext_atto", "atto", "resnet50_cbam", "vit_tiny", ...; throws
    /// <see cref="ArgumentException"/> listing the choices for anything else.</summary>
    public static string Canonical(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        if (Names.Contains(n))
        {
            return n;
        }

        if (Names.Contains("convnext_" + n))
        {
            return "convnext_" + n;
        }

        throw new ArgumentException($"unknown model '{name}'; choose one of {string.Join(", ", Names)}", nameof(name));
    }

    public static BackboneFamily Family(string name)
    {
        var n = Canonical(name);
        return n == ResNet50Cbam ? BackboneFamily.ResNetCbam
            : n.StartsWith("vit_", StringComparison.Ordinal) ? BackboneFamily.Vit
            : BackboneFamily.ConvNeXt;
    }

    public static VitSpec Vit(string name)
    {
        var n = Canonical(name);
        return VitSpec.All.FirstOrDefault(s => s.Name == n) ?? throw new ArgumentException($"'{name}' is not a ViT", nameof(name));
    }
}
