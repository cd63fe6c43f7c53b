namespace FmaEdge.Training.Models;

/// <summary>One ViT size: width, depth and heads (patch 16, MLP ratio 4, cls token; timm vit_*_patch16). Immutable.</summary>
internal sealed record VitSpec(string Name, int Dim, int Depth, int Heads)
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

/// <summary>Vision Transformer, patch 16 (<see cref="VisionTransformer"/>), the seed's second model. The image size must
/// be a multiple of the patch size. No pretrained loader. Stateless.</summary>
internal sealed class VitFamily : BackboneFamily
{
    public override IReadOnlyList<string> Names { get; } = [.. VitSpec.All.Select(s => s.Name)];

    public override void Validate(ModelConfig config)
    {
        if (config.ImageSize % VitSpec.PatchSize != 0)
        {
            throw new ArgumentException($"{config.Model} cuts the image into {VitSpec.PatchSize}-pixel patches: the image size must be a multiple of {VitSpec.PatchSize} (got {config.ImageSize})");
        }
    }

    public override Backbone Create(ModelConfig config) =>
        new VisionTransformer(VitSpec.All.Single(s => s.Name == BackboneRegistry.Canonical(config.Model)), config.ImageSize, config.DropPath);
}
