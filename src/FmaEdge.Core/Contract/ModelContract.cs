using System.Security.Cryptography;
using System.Text.Json;
using FmaEdge.Core.Taxonomy;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Core.Contract;

/// <summary>A model file that passed every contract check: its manifest, tree and identity. Immutable.</summary>
public sealed record ValidatedModel(string Path, string Sha256, long Bytes, ModelManifest Manifest, CategoryTree Tree, int Opset)
{
    /// <summary>Short hash for logs and topics (first 12 hex digits).</summary>
    public string ShortHash => Sha256[..12];
}

/// <summary>The outcome of checking a file against the contract: every violation found, or the model.</summary>
public sealed record ContractReport(string Path, IReadOnlyList<string> Violations, ValidatedModel? Model)
{
    public bool IsValid => Violations.Count == 0 && Model is not null;
}

/// <summary>Reads ONNX files and checks them against the FmaEdge model contract (docs/model-format.md),
/// listing every violation in one go. Managed code only, no ONNX Runtime. Stateless and thread-safe.</summary>
public static class ModelContract
{
    /// <summary>Lowest ONNX opset the contract accepts.</summary>
    public const int MinOpset = 17;

    /// <summary>Largest model file accepted (protobuf's own 2 GiB limit).</summary>
    public const long MaxBytes = int.MaxValue;

    /// <summary>Checks a file. Never throws for a bad file: problems come back as violations.</summary>
    public static ContractReport Validate(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return Fail($"file not found: {path}");
            }

            if (info.Length == 0)
            {
                return Fail("file is empty");
            }

            if (info.Length > MaxBytes)
            {
                return Fail($"file is {info.Length} bytes, over the {MaxBytes}-byte limit of ONNX protobuf files");
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail($"cannot read file: {e.Message}");
        }

        return Validate(bytes, path);

        ContractReport Fail(string why) => new(path, [why], null);
    }

    /// <summary>Checks model bytes (<paramref name="path"/> only names them in messages).</summary>
    public static ContractReport Validate(byte[] bytes, string path)
    {
        var violations = new List<string>();
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            return new ContractReport(path, [$"not an ONNX model (protobuf parse failed: {e.Message})"], null);
        }

        if (model.Graph is null || (model.Graph.Node.Count == 0 && model.Graph.Output.Count == 0))
        {
            return new ContractReport(path, ["not an ONNX model (no graph)"], null);
        }

        var opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => (int)o.Version).DefaultIfEmpty(0).Max();
        if (opset < MinOpset)
        {
            violations.Add($"opset {opset} is below the minimum {MinOpset}");
        }

        // A repeated key would make ToDictionary throw; which copy a runtime reads is undefined, so say so.
        foreach (var dup in model.MetadataProps.GroupBy(p => p.Key, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            violations.Add($"metadata '{dup.Key}' appears {dup.Count()} times");
        }

        var meta = model.MetadataProps.GroupBy(p => p.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().Value, StringComparer.Ordinal);
        ModelManifest? manifest = null;
        if (!meta.TryGetValue(ModelManifest.FormatVersionKey, out var fv))
        {
            violations.Add($"metadata '{ModelManifest.FormatVersionKey}' is missing (not an FmaEdge model?)");
        }
        else if (fv != ModelManifest.CurrentFormatVersion.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            violations.Add($"format version '{fv}' is not supported (this build reads {ModelManifest.CurrentFormatVersion})");
        }

        if (!meta.TryGetValue(ModelManifest.MetadataKey, out var json))
        {
            violations.Add($"metadata '{ModelManifest.MetadataKey}' is missing");
        }
        else
        {
            try
            {
                manifest = ModelManifest.FromJson(json);
                var nulls = NullFields(manifest);
                if (nulls.Count > 0)
                {
                    // JSON null in a required object or list: report it rather than fail later with a
                    // NullReferenceException, and skip the checks that would read it.
                    violations.AddRange(nulls.Select(f => $"manifest field '{f}' is null"));
                    manifest = null;
                }
                else if (manifest.FormatVersion != ModelManifest.CurrentFormatVersion)
                {
                    violations.Add($"manifest format_version {manifest.FormatVersion} is not supported (this build reads {ModelManifest.CurrentFormatVersion})");
                }
            }
            catch (JsonException e)
            {
                violations.Add($"metadata '{ModelManifest.MetadataKey}' is not valid manifest JSON: {e.Message}");
            }
        }

        CategoryTree? tree = null;
        if (manifest is not null)
        {
            try
            {
                tree = manifest.ParseTree();
            }
            catch (Exception e) when (e is TaxonomyException or JsonException)
            {
                violations.AddRange(e is TaxonomyException te ? te.Errors.Select(x => "taxonomy: " + x) : ["taxonomy: " + e.Message]);
            }

            CheckManifest(manifest, tree, violations);
        }

        CheckGraph(model.Graph, manifest, tree, violations);
        if (violations.Count > 0 || manifest is null || tree is null)
        {
            return new ContractReport(path, violations, null);
        }

        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        return new ContractReport(path, violations, new ValidatedModel(path, sha, bytes.LongLength, manifest, tree, opset));
    }

    /// <summary>Validates and returns the model, or throws <see cref="InvalidModelException"/> with every violation.</summary>
    public static ValidatedModel Load(string path)
    {
        var report = Validate(path);
        return report.IsValid ? report.Model! : throw new InvalidModelException(report);
    }

    /// <summary>Writes (or replaces) the manifest in an ONNX model's metadata.</summary>
    public static void WriteManifest(ModelProto model, ModelManifest manifest)
    {
        SetMeta(model, ModelManifest.FormatVersionKey, manifest.FormatVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        SetMeta(model, ModelManifest.MetadataKey, manifest.ToJson());
    }

    private static void SetMeta(ModelProto model, string key, string value)
    {
        var existing = model.MetadataProps.FirstOrDefault(p => p.Key == key);
        if (existing is not null)
        {
            existing.Value = value;
        }
        else
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }
    }

    private static List<string> NullFields(ModelManifest m)
    {
        var nulls = new List<string>();
        void Check(object? value, string name)
        {
            if (value is null)
            {
                nulls.Add(name);
            }
        }

        Check(m.Model, "model");
        Check(m.Input, "input");
        Check(m.Outputs, "outputs");
        Check(m.Preprocess, "preprocess");
        Check(m.Decoding, "decoding");
        if (m.Outputs is not null)
        {
            for (var i = 0; i < m.Outputs.Count; i++)
            {
                Check(m.Outputs[i], $"outputs[{i}]");
            }
        }

        if (m.Preprocess is not null)
        {
            Check(m.Preprocess.Mean, "preprocess.mean");
            Check(m.Preprocess.Std, "preprocess.std");
        }

        if (m.Decoding is not null)
        {
            Check(m.Decoding.Thresholds, "decoding.thresholds");
            Check(m.Decoding.Temperatures, "decoding.temperatures");
        }

        return nulls;
    }

    private static void CheckManifest(ModelManifest m, CategoryTree? tree, List<string> v)
    {
        if (string.IsNullOrWhiteSpace(m.Model.Id))
        {
            v.Add("model.id is empty");
        }

        var p = m.Preprocess;
        if (!ResizeModes.All.Contains(p.Resize))
        {
            v.Add($"preprocess.resize '{p.Resize}' is not one of {string.Join(", ", ResizeModes.All)}");
        }

        if (p.Interpolation is not ("area" or "linear" or "cubic" or "nearest"))
        {
            v.Add($"preprocess.interpolation '{p.Interpolation}' is not one of area, linear, cubic, nearest");
        }

        if (p.ChannelOrder is not ("RGB" or "BGR"))
        {
            v.Add($"preprocess.channel_order '{p.ChannelOrder}' is not RGB or BGR");
        }

        if (p.Mean.Count != m.Input.Channels || p.Std.Count != m.Input.Channels)
        {
            v.Add($"preprocess.mean and preprocess.std need {m.Input.Channels} values each");
        }

        if (p.Std.Any(s => !(s > 0) || !double.IsFinite(s)))
        {
            v.Add("preprocess.std values must be positive");
        }

        if (!(p.Scale > 0) || !double.IsFinite(p.Scale))
        {
            v.Add("preprocess.scale must be positive");
        }

        // Only what FmaEdge.Vision implements is accepted, so a file never asks for a behaviour it won't get.
        if (p.Grayscale != "replicate")
        {
            v.Add($"preprocess.grayscale '{p.Grayscale}' is not supported (only replicate)");
        }

        if (p.PadValue is < 0 or > 255)
        {
            v.Add($"preprocess.pad_value {p.PadValue} is outside 0..255");
        }

        if (m.Input.Layout != "NCHW")
        {
            v.Add($"input.layout '{m.Input.Layout}' is not NCHW");
        }

        if (m.Input.Channels != 3)
        {
            v.Add($"input.channels is {m.Input.Channels}; the contract takes 3 (RGB)");
        }

        if (m.Input.Height is < 8 or > 4096 || m.Input.Width is < 8 or > 4096)
        {
            v.Add($"input size {m.Input.Height}x{m.Input.Width} (height x width) is outside 8..4096");
        }

        var d = m.Decoding;
        if (d.PathScoring is not (PathScorings.Product or PathScorings.Leaf))
        {
            v.Add($"decoding.path_scoring '{d.PathScoring}' is not product or leaf");
        }

        if (d.TopK is < 1 or > 100)
        {
            v.Add($"decoding.top_k {d.TopK} is outside 1..100");
        }

        if (d.TargetPrecision is { } tp && !(tp > 0 && tp <= 1))
        {
            v.Add($"decoding.target_precision {tp} is outside (0, 1]");
        }

        if (d.Confidence is { } confidence && !(confidence > 0 && confidence < 1))
        {
            v.Add($"decoding.confidence {confidence} is outside (0, 1)");
        }

        for (var i = 0; i < d.Thresholds.Count; i++)
        {
            if (!(d.Thresholds[i] >= 0 && double.IsFinite(d.Thresholds[i])))
            {
                v.Add($"decoding.thresholds[{i}] = {d.Thresholds[i]} is not a number >= 0 (0..1, or above 1 to never answer at that level)");
            }
        }

        for (var i = 0; i < d.Temperatures.Count; i++)
        {
            if (!(d.Temperatures[i] > 0) || !double.IsFinite(d.Temperatures[i]))
            {
                v.Add($"decoding.temperatures[{i}] = {d.Temperatures[i]} must be a positive number");
            }
        }

        if (tree is null)
        {
            return;
        }

        if (d.Thresholds.Count != tree.Depth)
        {
            v.Add($"decoding.thresholds has {d.Thresholds.Count} values for {tree.Depth} levels");
        }

        if (d.Temperatures.Count != tree.Depth)
        {
            v.Add($"decoding.temperatures has {d.Temperatures.Count} values for {tree.Depth} levels");
        }

        if (m.Outputs.Count != tree.Depth)
        {
            v.Add($"manifest lists {m.Outputs.Count} outputs for {tree.Depth} levels");
        }

        foreach (var dup in m.Outputs.GroupBy(o => o.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            v.Add($"output name '{dup.Key}' is listed for {dup.Count()} levels");
        }

        // The decoder applies one kind to every level (HierarchicalDecoder.ForModel), so a mix would decode wrongly.
        if (m.Outputs.Select(o => o.Kind).Distinct().Count() > 1)
        {
            v.Add("outputs mix logits and probabilities; all levels must have the same kind");
        }

        for (var l = 0; l < m.Outputs.Count; l++)
        {
            if (m.Outputs[l].Level != l)
            {
                v.Add($"outputs[{l}] is for level {m.Outputs[l].Level}; outputs must be listed coarse to fine");
            }

            if (m.Outputs[l].Kind is not (OutputKinds.Logits or OutputKinds.Probabilities))
            {
                v.Add($"outputs[{l}].kind '{m.Outputs[l].Kind}' is not logits or probabilities");
            }
        }
    }

    private static void CheckGraph(GraphProto g, ModelManifest? m, CategoryTree? tree, List<string> v)
    {
        var initializers = g.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = g.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        if (inputs.Count != 1)
        {
            v.Add($"the graph has {inputs.Count} inputs; the contract takes exactly one image tensor");
        }
        else
        {
            var input = inputs[0];
            var (elem, dims) = Describe(input);
            if (m is not null && input.Name != m.Input.Name)
            {
                v.Add($"graph input is named '{input.Name}' but the manifest says '{m.Input.Name}'");
            }

            if (elem != (int)TensorProto.Types.DataType.Float)
            {
                v.Add($"input '{input.Name}' is not float32");
            }

            if (dims is null || dims.Count != 4)
            {
                v.Add($"input '{input.Name}' must be rank 4 [N,3,H,W], got {Shape(dims)}");
            }
            else
            {
                if (dims[0] is > 0)
                {
                    v.Add($"input batch dimension is fixed at {dims[0]}; it must be dynamic");
                }

                if (dims[1] != 3)
                {
                    v.Add($"input has {Shape(dims)}; channel dimension must be 3");
                }

                if (m is not null && (dims[2] != m.Input.Height || dims[3] != m.Input.Width))
                {
                    v.Add($"input shape {Shape(dims)} does not match the manifest size {m.Input.Height}x{m.Input.Width} (height x width)");
                }
            }
        }

        if (m is null)
        {
            return;
        }

        var outputs = g.Output.GroupBy(o => o.Name, StringComparer.Ordinal).ToDictionary(o => o.Key, o => o.First(), StringComparer.Ordinal);
        foreach (var spec in m.Outputs)
        {
            if (string.IsNullOrEmpty(spec.Name))
            {
                v.Add($"outputs for level {spec.Level} has no name");
                continue;
            }

            if (!outputs.TryGetValue(spec.Name, out var output))
            {
                v.Add($"output '{spec.Name}' (level {spec.Level}) is not a graph output; graph outputs are: {string.Join(", ", outputs.Keys)}");
                continue;
            }

            var (elem, dims) = Describe(output);
            if (elem != (int)TensorProto.Types.DataType.Float)
            {
                v.Add($"output '{spec.Name}' is not float32");
            }

            if (dims is null || dims.Count != 2)
            {
                v.Add($"output '{spec.Name}' must be rank 2 [N, classes], got {Shape(dims)}");
            }
            else if (tree is not null && spec.Level >= 0 && spec.Level < tree.Depth && dims[1] != tree.Levels[spec.Level].Count)
            {
                v.Add($"output '{spec.Name}' has {dims[1]} classes but level '{tree.Levels[spec.Level].Name}' has {tree.Levels[spec.Level].Count}");
            }
        }
    }

    /// <summary>Element type and dims (null for a dynamic dimension) of a graph value.</summary>
    private static (int Elem, List<long?>? Dims) Describe(ValueInfoProto value)
    {
        if (value.Type?.TensorType is not { } t)
        {
            return (-1, null);
        }

        var dims = t.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : (long?)null).ToList();
        return (t.ElemType, dims);
    }

    private static string Shape(List<long?>? dims) =>
        dims is null ? "no shape" : "[" + string.Join(",", dims.Select(d => d?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "N")) + "]";
}

/// <summary>A model file that breaks the contract; <see cref="Report"/> lists every violation.</summary>
public sealed class InvalidModelException(ContractReport report)
    : Exception($"'{report.Path}' is not a valid FmaEdge model:\n  - " + string.Join("\n  - ", report.Violations))
{
    public ContractReport Report { get; } = report;
}
