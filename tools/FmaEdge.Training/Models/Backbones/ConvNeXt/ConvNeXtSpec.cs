namespace FmaEdge.Training.Models;

/// <summary>One ConvNeXt size: depths and widths per stage, and whether the MLP weights are stored as 1x1
/// convolutions (timm's conv_mlp, used by atto..nano). Immutable.</summary>
public sealed record ConvNeXtSpec(string Name, int[] Depths, int[] Dims, bool ConvMlp)
{
    /// <summary>Every supported size, smallest first (field notes section 2, timm convnext.py).</summary>
    public static readonly IReadOnlyList<ConvNeXtSpec> All =
    [
        new("convnext_atto", [2, 2, 6, 2], [40, 80, 160, 320], true),
        new("convnext_femto", [2, 2, 6, 2], [48, 96, 192, 384], true),
        new("convnext_pico", [2, 2, 6, 2], [64, 128, 256, 512], true),
        new("convnext_nano", [2, 2, 8, 2], [80, 160, 320, 640], true),
        new("convnext_tiny", [3, 3, 9, 3], [96, 192, 384, 768], false),
        new("convnext_small", [3, 3, 27, 3], [96, 192, 384, 768], false),
    ];

    /// <summary>Width of the final feature (the heads' input).</summary>
    public int FeatureDim => Dims[^1];

    /// <summary>Looks a size up by "convnext_atto" or "atto". Throws <see cref="ArgumentException"/> listing the choices.</summary>
    public static ConvNeXtSpec Get(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        return All.FirstOrDefault(s => s.Name == n || s.Name == "convnext_" + n)
            ?? throw new ArgumentException($"unknown model '{name}'; choose one of {string.Join(", ", All.Select(s => s.Name))}", nameof(name));
    }
}
