namespace FmaEdge.Training.Models;

/// <summary>Every backbone family the trainer builds, and every `--model` name they answer to. Adding a family: a folder
/// under Models/Backbones with its <see cref="BackboneFamily"/> and <see cref="Backbone"/>, and one entry in
/// <see cref="Families"/>; the registry's tests then build, run, export and reload it. Stateless and thread-safe.</summary>
public static class BackboneRegistry
{
    internal static IReadOnlyList<BackboneFamily> Families { get; } = [new ConvNeXtFamily(), new ResNetCbamFamily(), new VitFamily()];

    /// <summary>Every canonical name, family by family (the ConvNeXt sizes, resnet50_cbam, vit_tiny, vit_small).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Families.SelectMany(f => f.Names)];

    /// <summary>The canonical name for "convnext_atto", "atto", "resnet50_cbam", "vit_tiny", ...; throws
    /// <see cref="ArgumentException"/> listing the choices for anything else.</summary>
    public static string Canonical(string name) => Find(name).Name;

    /// <summary>The family that builds <paramref name="name"/> (any accepted spelling).</summary>
    internal static BackboneFamily FamilyOf(string name) => Find(name).Family;

    private static (BackboneFamily Family, string Name) Find(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        foreach (var family in Families)
        {
            if (family.Names.Contains(n))
            {
                return (family, n);
            }
        }

        foreach (var family in Families)
        {
            if (family.Alias(n) is { } canonical)
            {
                return (family, canonical);
            }
        }

        throw new ArgumentException($"unknown model '{name}'; choose one of {string.Join(", ", Names)}", nameof(name));
    }
}
