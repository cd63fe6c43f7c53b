namespace FmaEdge.Training.Models;

/// <summary>How a timm checkpoint of a family maps onto our model: the parameter-name prefixes it fills, and the prefix
/// of timm's own classifier in the file, which is skipped because our heads fit our tree. Immutable.</summary>
internal sealed record PretrainedLayout(IReadOnlyList<string> LoadedPrefixes, string ClassifierPrefix)
{
    public bool Loads(string parameterName) => LoadedPrefixes.Any(p => parameterName.StartsWith(p, StringComparison.Ordinal));
}

/// <summary>One kind of backbone (ConvNeXt, ResNet-CBAM, ViT): the `--model` names it answers to, what it can be built at,
/// how to build one, and which pretrained files it takes. Registered in <see cref="BackboneRegistry"/>; a new family is
/// one folder under Models/Backbones and one line there. Stateless and thread-safe.</summary>
internal abstract class BackboneFamily
{
    /// <summary>The canonical `--model` names of this family, smallest first.</summary>
    public abstract IReadOnlyList<string> Names { get; }

    /// <summary>The canonical name for another spelling this family accepts (e.g. "atto"), or null.</summary>
    public virtual string? Alias(string lowerCaseName) => null;

    /// <summary>Throws <see cref="ArgumentException"/> when this family cannot be built at the configuration (called
    /// after the image size is checked against 32..4096).</summary>
    public virtual void Validate(ModelConfig config)
    {
    }

    /// <summary>Builds the backbone for <see cref="ModelConfig.Model"/> (one of <see cref="Names"/>).</summary>
    public abstract Backbone Create(ModelConfig config);

    /// <summary>What `--pretrained` loads for this family; null when the family has no pretrained loader.</summary>
    public virtual PretrainedLayout? Pretrained => null;
}
