namespace FmaEdge.Training.Models;

/// <summary>ResNet-50 with CBAM after every bottleneck (<see cref="ResNetCbam"/>), the seed's first model. No pretrained
/// loader (timm has no CBAM ResNet-50 weights). Stateless.</summary>
internal sealed class ResNetCbamFamily : BackboneFamily
{
    public const string ResNet50Cbam = "resnet50_cbam";

    public override IReadOnlyList<string> Names { get; } = [ResNet50Cbam];

    public override Backbone Create(ModelConfig config) => new ResNetCbam(config.DropPath);
}
