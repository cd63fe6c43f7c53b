using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.Training.Data;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Reporting;
using FmaEdge.Vision;

namespace FmaEdge.Training.Calibration;

/// <summary>The handler of <c>fma-train calibrate --model FILE.onnx --data VALDIR|CSV [--calib-fraction F] [--report DIR|CSV]
/// [--target-precision 0.99] [--confidence 0.9] [--out FILE.onnx] [--batch N] [--providers cpu,cuda,...]</c>. Returns the
/// process exit code. Stateless.</summary>
public static class CalibrateCommand
{
    /// <summary>Calibrates and writes the model (in place unless <paramref name="outPath"/> is given), printing
    /// the temperatures, thresholds and the coverage reached.</summary>
    /// <param name="calibFraction">When above 0, <paramref name="dataPath"/> is a training tree and the calibration images
    /// are the part `fma-train train --calib-fraction` set aside from it (the same files: same stratified split and seed).</param>
    /// <param name="reportData">Also evaluate the calibrated model on these images (not used to fit) and write report.json
    /// and report.html beside the written model, with the run's history.json when it is there, as the trainer does.</param>
    public static int Run(string modelPath, string dataPath, double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision,
        double confidence = ThresholdCalibrator.DefaultConfidence, string? outPath = null, int batchSize = 32, IReadOnlyList<string>? providers = null,
        double calibFraction = 0, string? reportData = null, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
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
            if (calibFraction is < 0 or >= 1)
            {
                throw new ArgumentException($"--calib-fraction {calibFraction} is outside [0, 1)");
            }

            // The images are read first, so that a bad --data or --report path fails before the model is rewritten.
            var tree = calibFraction > 0 || reportData is not null ? ModelContract.Load(modelPath).Tree : null;
            var report = reportData is null ? null : ModelEvaluator.LoadData(reportData, tree!);
            var run = calibFraction > 0
                ? ModelCalibrator.Calibrate(modelPath, CalibrationPart(ModelEvaluator.LoadData(dataPath, tree!), calibFraction), options, cancellationToken)
                : ModelCalibrator.Calibrate(modelPath, dataPath, options, cancellationToken);
            PrintSummary(run, output);
            output.WriteLine($"wrote {run.Written.Path} ({run.Written.ShortHash})");
            if (report is not null)
            {
                var shown = ModelEvaluator.Evaluate(run.Written.Path, report, options.Evaluation, cancellationToken);
                var files = ReportWriter.Write(Path.GetDirectoryName(run.Written.Path)!, shown, run.Fit, fittedOnReportImages: false);
                var c = shown.Metrics.Coarse;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"on {shown.Images.Count} report images (not used to fit): coarse answers for {c.Answered} at precision {c.Precision * 100:0.00}%; wrote {files.Json} and {files.Html}"));
            }

            return EvalCommand.Ok;
        }
        catch (Exception e) when (EvalCommand.IsInputError(e))
        {
            error.WriteLine($"fma-train calibrate: {e.Message}");
            return EvalCommand.Failed;
        }
    }

    /// <summary>The calibration part of a training set, as `fma-train train --calib-fraction` sets it aside.</summary>
    private static LabeledDataset CalibrationPart(LabeledDataset training, double fraction) =>
        DatasetSource.SplitStratified(training, fraction, DatasetSource.CalibrationSplitSeed).Val;

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
            var missed = fit.Thresholds.ReachedTarget[l] ? "" : "  (target missed)";
            var bound = fit.Thresholds.PrecisionLowerBoundByLevel[l] is { } b ? (b * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "-";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{tree.Levels[l].Name,-22} T={t.Temperature,6:F3} NLL {t.NllBefore:F4}->{t.NllAfter:F4}  threshold {DecodingSpec.FormatThreshold(fit.Thresholds.Thresholds[l])}  answers {fit.Thresholds.AcceptedByLevel[l],5} precision {precision} (lower bound {bound}){missed}"));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"coarse answers: coverage by level [{string.Join(", ", run.After.Metrics.Coarse.CoverageByLevel.Select(c => (c * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%"))}], " +
            $"precision {run.After.Metrics.Coarse.Precision * 100:0.00}% (on the calibration set itself)"));
    }
}
