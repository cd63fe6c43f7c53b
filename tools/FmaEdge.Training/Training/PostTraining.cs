using System.Globalization;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Training.Export;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Reporting;

namespace FmaEdge.Training.Training;

/// <summary>The post-export step of `fma-train train`: once the verified RUNDIR/model.onnx exists, calibrate it on
/// the validation set through ONNX Runtime (the daemon's path: per-level temperatures and coarse thresholds for
/// the target precision, written back into the model file) and write RUNDIR/report.json and report.html.
/// Called on the training thread; not thread-safe.</summary>
public static class PostTraining
{
    /// <param name="result">The run: RunDir, Train/Val datasets (same tree), History (learning curves), checkpoints.</param>
    /// <param name="export">The exported model: Path (RUNDIR/model.onnx), the validated Model (manifest, tree).</param>
    public static void Run(TrainingResult result, ExportResult export, ITrainingReporter reporter, CancellationToken ct,
        double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision)
    {
        ct.ThrowIfCancellationRequested();
        if (result.Val.Images.Count == 0)
        {
            reporter.Warn($"no validation images: {export.Path} stays uncalibrated (temperatures 1, thresholds 0) and no report is written");
            return;
        }

        reporter.Info($"calibrating on {result.Val.Images.Count} validation images (target precision {targetPrecision:P1}) and writing the report");
        var (calibration, files) = RunReport.CalibrateAndWrite(result.RunDir, export.Path, result.Val, targetPrecision, null, ct);
        var fit = calibration.Fit;
        var inv = CultureInfo.InvariantCulture;
        reporter.Info("calibrated: temperatures [" + string.Join(", ", fit.Decoding.Temperatures.Select(t => t.ToString("F2", inv))) +
            "], thresholds [" + string.Join(", ", fit.Decoding.Thresholds.Select(t => t.ToString("F4", inv))) +
            $"], coarse coverage {fit.Thresholds.Coverage:P1} at precision {fit.Thresholds.Precision:P2} on val");
        reporter.Info($"report: {files.Html}");
    }
}
