using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Inference;
using FmaEdge.Training.Evaluation;
using FmaEdge.Vision;

namespace FmaEdge.Training.Calibration;

/// <summary>The handler of <c>fma-train calibrate --model FILE.onnx --data VALDIR|CSV [--target-precision 0.99] [--confidence 0.9]
/// [--out FILE.onnx] [--batch N] [--providers cpu,cuda,...]</c>. Returns the process exit code. Stateless.</summary>
public static class CalibrateCommand
{
    /// <summary>Calibrates and writes the model (in place unless <paramref name="outPath"/> is given), printing
    /// the temperatures, thresholds and the coverage reached.</summary>
    public static int Run(string modelPath, string dataPath, double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision,
        double confidence = ThresholdCalibrator.DefaultConfidence, string? outPath = null, int batchSize = 32, IReadOnlyList<string>? providers = null, TextWriter? output = null, TextWriter? error = null,
        CancellationToken cancellationToken = default)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            var options = new CalibrationOptions
            {
                TargetPrecision = targetPrecision,
                Confidence = confidence,
                OutputPath = outPath,
                Evaluation = new EvaluationOptions
                {
                    BatchSize = batchSize,
                    Inference = new InferenceOptions { Providers = [.. providers ?? [ExecutionProviders.Cpu]] },
                    Progress = new ConsoleProgress(output, "calibrate"),
                },
            };
            var run = ModelCalibrator.Calibrate(modelPath, dataPath, options, cancellationToken);
            PrintSummary(run, output);
            output.WriteLine($"wrote {run.Written.Path} ({run.Written.ShortHash})");
            return EvalCommand.Ok;
        }
        catch (Exception e) when (EvalCommand.IsInputError(e))
        {
            error.WriteLine($"fma-train calibrate: {e.Message}");
            return EvalCommand.Failed;
        }
    }

    /// <summary>Per level: temperature, NLL before/after, threshold, answers and their precision.</summary>
    public static void PrintSummary(CalibrationRun run, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(output);
        var fit = run.Fit;
        var tree = run.Written.Tree;
        var guarantee = fit.Thresholds.Confidence > 0
            ? string.Create(CultureInfo.InvariantCulture, $"confidence {fit.Thresholds.Confidence * 100:0.##}% ({fit.Thresholds.Method})")
            : "point estimate (no guarantee on new images)";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"calibrated on {fit.Thresholds.Images} images ({run.Before.Skipped.Count} skipped), target precision {fit.Thresholds.TargetPrecision * 100:0.##}%, {guarantee}"));
        for (var l = 0; l < tree.Depth; l++)
        {
            var t = fit.Temperatures[l];
            var p = fit.Thresholds.PrecisionByLevel[l];
            var precision = p is null ? "-" : (p.Value * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%";
            var missed = fit.Thresholds.ReachedTarget[l] ? "" : "  (target missed: ties at confidence 1.0)";
            var bound = fit.Thresholds.PrecisionLowerBoundByLevel[l] is { } b ? (b * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "-";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{tree.Levels[l].Name,-22} T={t.Temperature,6:F3} NLL {t.NllBefore:F4}->{t.NllAfter:F4}  threshold {fit.Thresholds.Thresholds[l]:F4}  answers {fit.Thresholds.AcceptedByLevel[l],5} precision {precision} (lower bound {bound}){missed}"));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"coarse answers: coverage by level [{string.Join(", ", run.After.Metrics.Coarse.CoverageByLevel.Select(c => (c * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%"))}], " +
            $"precision {run.After.Metrics.Coarse.Precision * 100:0.00}% (on the calibration set itself)"));
    }
}
