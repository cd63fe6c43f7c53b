namespace FmaEdge.Training.Models;

/// <summary>ConvNeXt atto..small (<see cref="ConvNeXtSpec"/>), the default family; "atto" is accepted for
/// "convnext_atto". Loads timm ConvNeXt safetensors (backbone and head.norm). Stateless.</summary>
internal sealed class ConvNeXtFamily : BackboneFamily
{
    public override IReadOnlyList<string> Names { get; } = [.. ConvNeXtSpec.All.Select(s => s.Name)];

    public override string? Alias(string lowerCaseName) =>
        Names.Contains("convnext_" + lowerCaseName) ? "convnext_" + lowerCaseName : null;

    public override Backbone Create(ModelConfig config) => new ConvNeXtBackbone(ConvNeXtSpec.Get(config.Model), config.DropPath);

    public override PretrainedLayout Pretrained { get; } = new(["stem.", "stages.", "head.norm."], "head.fc.");
}
