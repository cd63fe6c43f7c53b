using FmaEdge.Training.Export;
using FmaEdge.Training.Progress;

namespace FmaEdge.Training.Training;

/// <summary>THE post-export hook of `fma-train train`: called once the verified RUNDIR/model.onnx exists.
/// This is where calibration on the validation set (per-level temperatures and thresholds for the target
/// precision, written back into the model file) and the report (RUNDIR/report.json, RUNDIR/report.html) are
/// run; their code lives in Evaluation/, Calibration/ and Reporting/. Until they are wired, it only says so.
/// Called on the training thread; not thread-safe.</summary>
public static class PostTraining
{
    /// <param name="result">The run: RunDir, Train/Val datasets (same tree), History (learning curves), checkpoints.</param>
    /// <param name="export">The exported model: Path (RUNDIR/model.onnx), the validated Model (manifest, tree).</param>
    public static void Run(TrainingResult result, ExportResult export, ITrainingReporter reporter, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        // Lead: calibrate on result.Val through export.Path (ONNX Runtime, the daemon's path), rewrite the manifest's
        // decoding temperatures/thresholds with ModelContract.WriteManifest (temp file + rename, then re-Validate),
        // then write report.json and report.html into result.RunDir using result.History for the learning curves.
        reporter.Info($"calibration and report not wired yet: {export.Path} is uncalibrated (temperatures 1, thresholds 0); " +
            $"{result.Val.Images.Count} validation images available for it");
    }
}
