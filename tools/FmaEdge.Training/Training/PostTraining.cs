using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Training.Export;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Reporting;

namespace FmaEdge.Training.Training;

/// <summary>The post-export step of `fma-train train`: once the verified RUNDIR/model.onnx exists, calibrate it on
/// the calibration part through ONNX Runtime (the daemon's path: per-level temperatures and coarse thresholds for
/// the target precision at the stated confidence, written back into the model file), then evaluate it on the
/// validation set and write RUNDIR/report.json and report.html. Without a calibration part it calibrates on val.
/// Called on the training thread; not thread-safe.</summary>
public static class PostTraining
{
    /// <param name="result">The run: RunDir, Train/Val datasets (same tree), History (learning curves), checkpoints.</param>
    /// <param name="export">The exported model: Path (RUNDIR/model.onnx), the validated Model (manifest, tree).</param>
    public static void Run(TrainingResult result, ExportResult export, ITrainingReporter reporter, CancellationToken ct,
        double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision, double confidence = ThresholdCalibrator.DefaultConfidence)
    {
        ct.ThrowIfCancellationRequested();
        var inv = CultureInfo.InvariantCulture;
        if (result.Calib is { Images.Count: > 0 } calib)
        {
            reporter.Info($"calibrating on {calib.Images.Count} calibration images (target precision {targetPrecision:P1}, confidence {confidence:P0}); report on {result.Val.Images.Count} validation images");
            var (run, report, written) = RunReport.CalibrateAndWrite(result.RunDir, export.Path, calib, result.Val, targetPrecision, confidence, null, ct);
            reporter.Info("calibrated: temperatures [" + string.Join(", ", run.Fit.Decoding.Temperatures.Select(t => t.ToString("F2", inv))) +
                "], thresholds [" + string.Join(", ", run.Fit.Decoding.Thresholds.Select(DecodingSpec.FormatThreshold)) +
                $"]; on validation (not used to fit them): coarse coverage {report.Metrics.Coarse.Answered / (double)Math.Max(1, report.Images.Count):P1} at precision {report.Metrics.Coarse.Precision:P2}");
            reporter.Info($"report: {written.Html}");
            return;
        }

        if (result.Val.Images.Count == 0)
        {
            reporter.Warn($"no validation images: {export.Path} stays uncalibrated (temperatures 1, thresholds 0) and no report is written");
            return;
        }

        reporter.Warn("no calibration part (--calib-fraction 0): thresholds are fitted on the validation set, which also chose the epoch, and the report's coarse precision is measured on the same images");
        reporter.Info($"calibrating on {result.Val.Images.Count} validation images (target precision {targetPrecision:P1}, confidence {confidence:P0}) and writing the report");
        var (calibration, files) = RunReport.CalibrateAndWrite(result.RunDir, export.Path, result.Val, targetPrecision, confidence, null, ct);
        var fit = calibration.Fit;
        reporter.Info("calibrated: temperatures [" + string.Join(", ", fit.Decoding.Temperatures.Select(t => t.ToString("F2", inv))) +
            "], thresholds [" + string.Join(", ", fit.Decoding.Thresholds.Select(DecodingSpec.FormatThreshold)) +
            $"], coarse coverage {fit.Thresholds.Coverage:P1} at precision {fit.Thresholds.Precision:P2} on val");
        reporter.Info($"report: {files.Html}");
    }
}
