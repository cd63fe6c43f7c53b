using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Training.Evaluation;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Training.Calibration;

/// <summary>How <see cref="ModelCalibrator"/> calibrates. Immutable; checked by <see cref="Validate"/>.</summary>
public sealed record CalibrationOptions
{
    /// <summary>Precision the coarse answers must reach on the calibration set.</summary>
    public double TargetPrecision { get; init; } = ThresholdCalibrator.DefaultTargetPrecision;

    /// <summary>Confidence that every level's precision reaches the target on new images; 0 = point estimate (no guarantee).</summary>
    public double Confidence { get; init; } = ThresholdCalibrator.DefaultConfidence;

    /// <summary>Where to write the calibrated model; null rewrites the input file in place.</summary>
    public string? OutputPath { get; init; }

    /// <summary>How the model is run over the calibration images.</summary>
    public EvaluationOptions Evaluation { get; init; } = new();

    /// <summary>Every problem with these options, one sentence each (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!(TargetPrecision > 0 && TargetPrecision <= 1))
        {
            errors.Add($"target precision {TargetPrecision} is outside (0, 1]");
        }

        if (!(Confidence >= 0 && Confidence < 1))
        {
            errors.Add($"confidence {Confidence} is outside [0, 1) (0 = point estimate, no guarantee)");
        }

        errors.AddRange(Evaluation.Validate());
        return errors;
    }
}

/// <summary>A calibrated model file: the fit, the held-out evaluation before and after (same images, decoded
/// with the old and the new spec) and the model as written. Immutable.</summary>
public sealed record CalibrationRun(CalibrationResult Fit, EvaluationResult Before, EvaluationResult After, ValidatedModel Written);

/// <summary>Calibrates a model file on held-out data: evaluates it (ONNX Runtime, the daemon's preprocessing), fits
/// per-level temperatures and coarse thresholds (<see cref="DecodingCalibrator"/>), and stores them in the file's
/// manifest. Stateless and thread-safe; concurrent calls must not target the same output file.</summary>
public static class ModelCalibrator
{
    /// <summary>Key under the manifest's free-form "training" object where the calibration summary is kept.</summary>
    public const string TrainingKey = "calibration";

    /// <summary>Evaluates <paramref name="modelPath"/> on <paramref name="dataPath"/> (folder tree or CSV), fits,
    /// rewrites the manifest and re-validates the written file.</summary>
    public static CalibrationRun Calibrate(string modelPath, string dataPath, CalibrationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options = Checked(options);
        return Calibrate(modelPath, ModelEvaluator.Evaluate(modelPath, dataPath, options.Evaluation, cancellationToken), options, cancellationToken);
    }

    /// <summary>The same on an in-memory dataset labelled in the model's tree (e.g. the trainer's val split).</summary>
    public static CalibrationRun Calibrate(string modelPath, LabeledDataset data, CalibrationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options = Checked(options);
        return Calibrate(modelPath, ModelEvaluator.Evaluate(modelPath, data, options.Evaluation, cancellationToken), options, cancellationToken);
    }

    private static CalibrationOptions Checked(CalibrationOptions? options)
    {
        options ??= new CalibrationOptions();
        var errors = options.Validate();
        return errors.Count == 0 ? options : throw new ArgumentException("invalid calibration options: " + string.Join("; ", errors), nameof(options));
    }

    private static CalibrationRun Calibrate(string modelPath, EvaluationResult before, CalibrationOptions options, CancellationToken cancellationToken)
    {
        if (before.Images.Count == 0)
        {
            throw new InvalidOperationException($"no readable images in '{before.DataPath}' to calibrate on");
        }

        var model = before.Model;
        var fit = DecodingCalibrator.Calibrate(model.Tree, before.Decoding, EvaluationResult.OutputsAreLogits(model),
            before.RawOutputs, before.Labels, options.TargetPrecision, options.Confidence);
        cancellationToken.ThrowIfCancellationRequested();
        var summary = new JsonObject
        {
            ["data"] = before.DataPath,
            ["images"] = before.Images.Count,
            ["target_precision"] = options.TargetPrecision,
            ["method"] = fit.Thresholds.Method,
            ["confidence"] = options.Confidence > 0 ? options.Confidence : null,
            ["coverage"] = fit.Thresholds.Coverage,
            ["precision"] = fit.Thresholds.Precision,
            ["nll_before"] = new JsonArray(fit.Temperatures.Select(t => (JsonNode)JsonValue.Create(t.NllBefore)).ToArray()),
            ["nll_after"] = new JsonArray(fit.Temperatures.Select(t => (JsonNode)JsonValue.Create(t.NllAfter)).ToArray()),
            ["calibrated_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        };
        var written = WriteDecoding(modelPath, options.OutputPath ?? modelPath, fit.Decoding, summary);
        var after = before.Redecode(fit.Decoding) with { Model = written };
        return new CalibrationRun(fit, before, after, written);
    }

    /// <summary>Replaces the manifest's decoding spec (and, when given, training.calibration) in a model file,
    /// leaving every other byte of the model's content as it was: the file is parsed, only the manifest metadata
    /// entries change, and it is written to a temp file beside <paramref name="outputPath"/>, validated, then
    /// renamed over it. Returns the re-validated written model.</summary>
    public static ValidatedModel WriteDecoding(string modelPath, string outputPath, DecodingSpec decoding, JsonObject? calibrationSummary = null)
    {
        ArgumentNullException.ThrowIfNull(decoding);
        var bytes = File.ReadAllBytes(modelPath);
        var report = ModelContract.Validate(bytes, modelPath);
        if (!report.IsValid)
        {
            throw new InvalidModelException(report);
        }

        var manifest = report.Model!.Manifest;
        var training = manifest.Training?.DeepClone().AsObject() ?? [];
        if (calibrationSummary is not null)
        {
            training[TrainingKey] = calibrationSummary.DeepClone();
        }

        var updated = manifest with { Decoding = decoding, Training = training.Count == 0 ? manifest.Training : training };
        var proto = ModelProto.Parser.ParseFrom(bytes);
        ModelContract.WriteManifest(proto, updated);
        var newBytes = proto.ToByteArray();
        var check = ModelContract.Validate(newBytes, outputPath);
        if (!check.IsValid)
        {
            throw new InvalidModelException(check);
        }

        var full = Path.GetFullPath(outputPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        AtomicFile.WriteAllBytes(full, newBytes);

        // Read back what is on disk: the file, not our buffer, is what the daemon will load.
        return ModelContract.Load(full);
    }
}
