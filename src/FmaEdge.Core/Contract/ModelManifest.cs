using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Core.Taxonomy;

namespace FmaEdge.Core.Contract;

/// <summary>Everything a runtime needs to serve a model, stored as JSON in the ONNX file's metadata under
/// <see cref="MetadataKey"/>. See docs/model-format.md. Records are immutable snapshots.</summary>
public sealed record ModelManifest
{
    /// <summary>Metadata key holding the manifest JSON.</summary>
    public const string MetadataKey = "fmaedge.manifest";

    /// <summary>Metadata key holding the format version as plain text (readable without parsing JSON).</summary>
    public const string FormatVersionKey = "fmaedge.format_version";

    /// <summary>The manifest format this code writes and reads.</summary>
    public const int CurrentFormatVersion = 1;

    public int FormatVersion { get; init; } = CurrentFormatVersion;
    public ModelInfo Model { get; init; } = new();
    public JsonNode? Taxonomy { get; init; }
    public InputSpec Input { get; init; } = new();
    public List<OutputSpec> Outputs { get; init; } = [];
    public PreprocessSpec Preprocess { get; init; } = new();
    public DecodingSpec Decoding { get; init; } = new();

    /// <summary>Free-form training summary: data, recipe, validation metrics.</summary>
    public JsonObject? Training { get; init; }

    /// <summary>How the graph was quantized (by <c>fma-train quantize</c>), or null for a float model.</summary>
    public QuantizationSpec? Quantization { get; init; }

    /// <summary>Parses and validates the embedded tree.</summary>
    public CategoryTree ParseTree() =>
        Taxonomy is null
            ? throw new TaxonomyException(["the manifest has no taxonomy"])
            : TaxonomyBuilder.Build(Taxonomy.Deserialize<TaxonomyDocument>(TaxonomyLoader.Json)
                ?? throw new TaxonomyException(["the manifest taxonomy is empty"]), allowSingleClassLevels: true);

    /// <summary>Serialises to the JSON stored in the model file.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, TaxonomyLoader.Json);

    /// <summary>Parses manifest JSON; throws <see cref="JsonException"/> when malformed.</summary>
    public static ModelManifest FromJson(string json) =>
        JsonSerializer.Deserialize<ModelManifest>(json, TaxonomyLoader.Json) ?? throw new JsonException("manifest is null");

    /// <summary>Builds a manifest around a tree (the exporter fills the rest).</summary>
    public static ModelManifest For(CategoryTree tree) => new()
    {
        Taxonomy = JsonSerializer.SerializeToNode(tree.ToDocument(), TaxonomyLoader.Json),
        Outputs = tree.Levels.Select(l => new OutputSpec { Name = $"level{l.Depth}_logits", Level = l.Depth }).ToList(),
        Decoding = new DecodingSpec
        {
            Temperatures = tree.Levels.Select(_ => 1.0).ToList(),
            Thresholds = tree.Levels.Select(_ => 0.0).ToList(),
        },
    };
}

/// <summary>Identity and lineage of a model.</summary>
public sealed record ModelInfo
{
    public string Id { get; init; } = "";
    public string Version { get; init; } = "";
    public string CreatedUtc { get; init; } = "";
    public string Architecture { get; init; } = "";
    public string Head { get; init; } = "";
    public string Loss { get; init; } = "";
}

/// <summary>The single image input: float32 [N, channels, height, width], N dynamic.</summary>
public sealed record InputSpec
{
    public string Name { get; init; } = "image";
    public int Channels { get; init; } = 3;
    public int Height { get; init; } = 224;
    public int Width { get; init; } = 224;
    public string Layout { get; init; } = "NCHW";
}

/// <summary>One output per level: [N, classes in level], logits or probabilities.</summary>
public sealed record OutputSpec
{
    public string Name { get; init; } = "";
    public int Level { get; init; }

    /// <summary>"logits" (softmax applied by the decoder, after temperature) or "probabilities".</summary>
    public string Kind { get; init; } = OutputKinds.Logits;
}

/// <summary>Accepted values of <see cref="OutputSpec.Kind"/>.</summary>
public static class OutputKinds
{
    public const string Logits = "logits";
    public const string Probabilities = "probabilities";
}

/// <summary>How an image becomes the input tensor. The trainer and daemon both run exactly this through
/// FmaEdge.Vision's preprocessor.</summary>
public sealed record PreprocessSpec
{
    /// <summary>"stretch" (resize to width x height ignoring aspect), "letterbox" (fit and pad with
    /// <see cref="PadValue"/>), or "center-crop" (resize the short side, crop the centre).</summary>
    public string Resize { get; init; } = ResizeModes.Stretch;

    /// <summary>"area", "linear" or "cubic"; "area" when shrinking is the usual choice.</summary>
    public string Interpolation { get; init; } = "area";

    /// <summary>Channel order of the tensor ("RGB").</summary>
    public string ChannelOrder { get; init; } = "RGB";

    /// <summary>Grayscale images are replicated to three channels ("replicate").</summary>
    public string Grayscale { get; init; } = "replicate";

    /// <summary>Pixels are divided by this before mean/std (255 for 8-bit).</summary>
    public double Scale { get; init; } = 255.0;

    public List<double> Mean { get; init; } = [0.485, 0.456, 0.406];
    public List<double> Std { get; init; } = [0.229, 0.224, 0.225];
    public int PadValue { get; init; }
}

/// <summary>Accepted values of <see cref="PreprocessSpec.Resize"/>.</summary>
public static class ResizeModes
{
    public const string Stretch = "stretch";
    public const string Letterbox = "letterbox";
    public const string CenterCrop = "center-crop";
    public static readonly IReadOnlySet<string> All = new HashSet<string>([Stretch, Letterbox, CenterCrop]);
}

/// <summary>How level scores become answers: path scoring, per-level temperatures and coarse thresholds.</summary>
public sealed record DecodingSpec
{
    /// <summary>"product": a path scores the product of its per-level probabilities (hierarchical heads);
    /// "leaf": only the leaf level scores paths and upper levels are its sums (flat heads).</summary>
    public string PathScoring { get; init; } = PathScorings.Product;

    /// <summary>Softmax temperature per level (1 = uncalibrated).</summary>
    public List<double> Temperatures { get; init; } = [];

    /// <summary>Per-level confidence bar for the coarse answer: 0..1 (0 = always answer at that level), or
    /// <see cref="NeverAnswer"/> (any value above 1) for a level that never answers.</summary>
    public List<double> Thresholds { get; init; } = [];

    /// <summary>The threshold of a level that never answers. Confidences are at most 1, so 1 itself still passes
    /// confidences that round to exactly 1.0 in float32; any value above 1 passes none. The calibrator writes this
    /// one when no threshold of a level can be certified.</summary>
    public const double NeverAnswer = 2.0;

    /// <summary>A threshold as people read it: "never" above 1, else four decimals.</summary>
    public static string FormatThreshold(double threshold) =>
        threshold > 1 ? "never" : threshold.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Precision the thresholds were calibrated for, or null when uncalibrated.</summary>
    public double? TargetPrecision { get; init; }

    /// <summary>Confidence with which every level's answers reach <see cref="TargetPrecision"/> on new images from the
    /// calibration images' distribution (exact binomial bound, see docs/training.md); null when the thresholds are a
    /// point estimate on the calibration images (models calibrated before this field) or uncalibrated.</summary>
    public double? Confidence { get; init; }

    /// <summary>How many top classes each level reports.</summary>
    public int TopK { get; init; } = 5;
}

/// <summary>Accepted values of <see cref="DecodingSpec.PathScoring"/>.</summary>
public static class PathScorings
{
    public const string Product = "product";
    public const string Leaf = "leaf";
}

/// <summary>A statically quantized graph in QDQ form (QuantizeLinear/DequantizeLinear pairs around the quantized
/// operators): what was quantized, to which types, and on what it was calibrated. See docs/model-format.md.</summary>
public sealed record QuantizationSpec
{
    /// <summary>"qdq": the graph carries QuantizeLinear/DequantizeLinear nodes (ONNX Runtime fuses them into int8
    /// kernels; TensorRT reads them as explicit quantization).</summary>
    public string Format { get; init; } = "qdq";

    /// <summary>Weight type and scheme, e.g. "int8-symmetric-per-channel".</summary>
    public string Weights { get; init; } = "";

    /// <summary>Activation type and scheme: "int8-symmetric" or "uint8-asymmetric" (per tensor).</summary>
    public string Activations { get; init; } = "";

    /// <summary>How activation ranges were chosen: "minmax" or "percentile".</summary>
    public string Method { get; init; } = "";

    /// <summary>The percentile kept for the "percentile" method (e.g. 99.999); null otherwise.</summary>
    public double? Percentile { get; init; }

    /// <summary>Images the activation ranges were measured on.</summary>
    public int CalibrationImages { get; init; }

    /// <summary>Operators running in int8, by type (e.g. Conv: 18, MatMul: 36).</summary>
    public Dictionary<string, int> QuantizedOps { get; init; } = [];

    /// <summary>Quantizable operators deliberately left in float (the classifier heads), by weight name.</summary>
    public List<string> KeptFloat { get; init; } = [];

    /// <summary>SHA-256 of the float model this one was made from.</summary>
    public string SourceSha256 { get; init; } = "";
}
