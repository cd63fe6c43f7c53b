using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Metrics;

namespace FmaEdge.Training.Evaluation;

/// <summary>The eval JSON (schema <see cref="Schema"/>): the metrics at the top level (images, levels[name, top1..top5,
/// ...], path_accuracy, consistency, mistake_severity, hierarchical_f1, coarse{coverage_by_level, precision, ...}) plus
/// model, decoding, data, timings and, when calibrated, calibration sections. Rates are fractions 0..1.
/// Stateless and thread-safe.</summary>
public static class EvalReport
{
    /// <summary>Schema identifier written as "schema".</summary>
    public const string Schema = "fmaedge.eval/1";

    /// <summary>snake_case, indented; what every eval/report JSON file is written with.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    /// <summary>Builds the JSON document of an evaluation (and of the calibration that produced its decoding).</summary>
    public static JsonObject Build(EvaluationResult result, CalibrationResult? calibration = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        var doc = new JsonObject
        {
            ["schema"] = Schema,
            ["created_utc"] = (time ?? TimeProvider.System).GetUtcNow().UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in Metrics(result.Metrics))
        {
            doc[key] = value?.DeepClone();
        }

        var m = result.Model;
        var manifest = m.Manifest;
        doc["model"] = new JsonObject
        {
            ["path"] = Path.GetFullPath(m.Path),
            ["sha256"] = m.Sha256,
            ["bytes"] = m.Bytes,
            ["id"] = manifest.Model.Id,
            ["version"] = manifest.Model.Version,
            ["created_utc"] = manifest.Model.CreatedUtc,
            ["architecture"] = manifest.Model.Architecture,
            ["head"] = manifest.Model.Head,
            ["loss"] = manifest.Model.Loss,
            ["input_width"] = manifest.Input.Width,
            ["input_height"] = manifest.Input.Height,
            ["opset"] = m.Opset,
            ["tree"] = m.Tree.ToString(),
            ["execution_provider"] = result.ExecutionProvider,
            ["training"] = manifest.Training?.DeepClone(),
        };
        doc["decoding"] = JsonSerializer.SerializeToNode(result.Decoding, JsonOptions);
        doc["data"] = new JsonObject
        {
            ["path"] = result.DataPath,
            ["images_listed"] = result.Images.Count + result.Skipped.Count,
            ["images_evaluated"] = result.Images.Count,
            ["skipped"] = JsonSerializer.SerializeToNode(result.Skipped, JsonOptions),
        };
        doc["timings"] = result.Timings is null ? null : JsonSerializer.SerializeToNode(result.Timings, JsonOptions);
        if (calibration is not null)
        {
            doc["calibration"] = Calibration(calibration, result.Model.Tree.Levels.Select(l => l.Name).ToArray());
        }

        return doc;
    }

    /// <summary>The metrics alone as a JSON object (snake_case field names of <see cref="MetricsReport"/>).</summary>
    public static JsonObject Metrics(MetricsReport metrics) =>
        JsonSerializer.SerializeToNode(metrics, JsonOptions)!.AsObject();

    /// <summary>The calibration section: temperatures with NLL before/after, thresholds and what they achieve.</summary>
    public static JsonObject Calibration(CalibrationResult c, IReadOnlyList<string> levelNames)
    {
        ArgumentNullException.ThrowIfNull(c);
        var t = c.Thresholds;
        return new JsonObject
        {
            ["images"] = t.Images,
            ["target_precision"] = t.TargetPrecision,
            ["method"] = t.Method,
            ["confidence"] = t.Confidence > 0 ? t.Confidence : null,
            ["assumption"] = t.Confidence > 0
                ? "new images are exchangeable with the calibration images (same distribution: same line, camera and defect mix)"
                : "none: the thresholds reach the target on the calibration images only",
            ["temperatures"] = new JsonArray(c.Temperatures.Select((f, l) => (JsonNode)new JsonObject
            {
                ["level"] = l,
                ["name"] = l < levelNames.Count ? levelNames[l] : $"L{l + 1}",
                ["temperature"] = f.Temperature,
                ["nll_before"] = f.NllBefore,
                ["nll_after"] = f.NllAfter,
            }).ToArray()),
            ["thresholds"] = new JsonArray(t.Thresholds.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["accepted_by_level"] = new JsonArray(t.AcceptedByLevel.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["precision_by_level"] = new JsonArray(t.PrecisionByLevel.Select(x => x is null ? null : (JsonNode)JsonValue.Create(x.Value)).ToArray()),
            ["precision_lower_bound_by_level"] = new JsonArray(t.PrecisionLowerBoundByLevel.Select(x => x is null ? null : (JsonNode)JsonValue.Create(x.Value)).ToArray()),
            ["reached_target"] = new JsonArray(t.ReachedTarget.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["coverage"] = t.Coverage,
            ["precision"] = t.Precision,
            ["before"] = Summary(c.Before),
            ["after"] = Summary(c.After),
        };
    }

    /// <summary>Writes a JSON document atomically (temp file + rename), creating the folder.</summary>
    public static void WriteFile(JsonNode doc, string path)
    {
        ArgumentNullException.ThrowIfNull(doc);
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        AtomicFile.WriteAllText(full, doc.ToJsonString(JsonOptions) + "\n");
    }

    private static JsonObject Summary(MetricsReport m) => new()
    {
        ["top1"] = new JsonArray(m.Levels.Select(l => (JsonNode)JsonValue.Create(l.Top1)).ToArray()),
        ["nll"] = new JsonArray(m.Levels.Select(l => (JsonNode)JsonValue.Create(l.Nll)).ToArray()),
        ["ece"] = new JsonArray(m.Levels.Select(l => (JsonNode)JsonValue.Create(l.Ece)).ToArray()),
        ["path_accuracy"] = m.PathAccuracy,
        ["coverage_by_level"] = new JsonArray(m.Coarse.CoverageByLevel.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
        ["coarse_precision"] = m.Coarse.Precision,
    };
}

/// <summary>Writes files so readers never see a half-written one: a temp file in the same folder, then a rename.</summary>
internal static class AtomicFile
{
    public static void WriteAllText(string path, string text) => Write(path, tmp => File.WriteAllText(tmp, text));

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, tmp => File.WriteAllBytes(tmp, bytes));

    private static void Write(string path, Action<string> write)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }
}
