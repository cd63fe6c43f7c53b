using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;

namespace FmaEdge.Messaging.Contract;

/// <summary>The serving model, retained on <c>&lt;prefix&gt;/model</c> (QoS 1) and republished at every connect
/// and swap. Immutable.</summary>
public sealed record ModelMessage
{
    public const string CurrentSchema = "fmaedge.model/1";

    public string Schema { get; init; } = CurrentSchema;

    public string Node { get; init; } = "";

    public string Session { get; init; } = "";

    public required string Id { get; init; }

    public string? Version { get; init; }

    /// <summary>SHA-256 of the ONNX file (hex).</summary>
    public required string Sha256 { get; init; }

    public string? Architecture { get; init; }

    /// <summary>For an int8 model (fma-train quantize), its activation scheme: "int8-symmetric" or "uint8-asymmetric";
    /// absent for a float model.</summary>
    public string? Quantization { get; init; }

    /// <summary>"TensorRT", "CUDA" or "CPU".</summary>
    public required string ExecutionProvider { get; init; }

    /// <summary>Why better providers were not used, in the order tried (empty when the first one worked).</summary>
    public IReadOnlyList<string> ProviderNotes { get; init; } = [];

    /// <summary>Per-level names, root first.</summary>
    public IReadOnlyList<string> Levels { get; init; } = [];

    /// <summary>Per-level coarse-answer thresholds, root first.</summary>
    public IReadOnlyList<double> Thresholds { get; init; } = [];

    /// <summary>Per-level temperatures, root first.</summary>
    public IReadOnlyList<double> Temperatures { get; init; } = [];

    public int TopK { get; init; }

    /// <summary>Input width x height the model expects.</summary>
    public int InputWidth { get; init; }

    public int InputHeight { get; init; }

    /// <summary>The taxonomy (levels and classes with parents), as in the model manifest.</summary>
    public JsonNode? Taxonomy { get; init; }

    /// <summary>When the model started serving, UTC.</summary>
    public DateTimeOffset LoadedAt { get; init; }

    /// <summary>Builds the message from a validated model file and the provider it runs on.</summary>
    public static ModelMessage From(ValidatedModel model, string executionProvider, IReadOnlyList<double>? thresholds = null,
        IEnumerable<string>? providerNotes = null, DateTimeOffset? loadedAt = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var m = model.Manifest;
        var depth = model.Tree.Depth;
        return new ModelMessage
        {
            Id = m.Model.Id,
            Version = string.IsNullOrEmpty(m.Model.Version) ? null : m.Model.Version,
            Sha256 = model.Sha256,
            Architecture = string.IsNullOrEmpty(m.Model.Architecture) ? null : m.Model.Architecture,
            Quantization = m.Quantization?.Activations,
            ExecutionProvider = executionProvider,
            ProviderNotes = providerNotes?.ToList() ?? [],
            Levels = model.Tree.Levels.Select(l => l.Name).ToList(),
            Thresholds = thresholds ?? Pad(m.Decoding.Thresholds, depth, 0.0),
            Temperatures = Pad(m.Decoding.Temperatures, depth, 1.0),
            TopK = m.Decoding.TopK,
            InputWidth = m.Input.Width,
            InputHeight = m.Input.Height,
            Taxonomy = m.Taxonomy?.DeepClone(),
            LoadedAt = (loadedAt ?? DateTimeOffset.UtcNow).ToUniversalTime(),
        };
    }

    /// <summary>The short reference results carry.</summary>
    public ModelRef ToRef() => new(Id, Version, Sha256, ExecutionProvider);

    private static List<double> Pad(List<double> values, int n, double fill) =>
        Enumerable.Range(0, n).Select(i => i < values.Count ? values[i] : fill).ToList();
}
