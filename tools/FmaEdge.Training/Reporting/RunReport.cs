using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Training.Calibration;
using FmaEdge.Training.Evaluation;

namespace FmaEdge.Training.Reporting;

/// <summary>What the trainer does after export: calibrate the exported model on validation data (rewriting it in
/// place) and write RUNDIR/report.json and report.html from the calibrated evaluation. Stateless.</summary>
public static class RunReport
{
    /// <summary>Calibrates <paramref name="modelPath"/> on <paramref name="valDataPath"/> (folder tree or CSV) and
    /// writes the run's report. Returns the calibration run (before/after evaluations) and the report files.</summary>
    public static (CalibrationRun Calibration, ReportFiles Files) CalibrateAndWrite(string runDir, string modelPath, string valDataPath,
        double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision, EvaluationOptions? evaluation = null,
        CancellationToken cancellationToken = default)
    {
        var run = ModelCalibrator.Calibrate(modelPath, valDataPath, new CalibrationOptions
        {
            TargetPrecision = targetPrecision,
            Evaluation = evaluation ?? new EvaluationOptions(),
        }, cancellationToken);
        var files = ReportWriter.Write(runDir, run.After, run.Fit);
        return (run, files);
    }

    /// <summary>The same with an in-memory validation set labelled in the model's tree (e.g. a stratified split).</summary>
    public static (CalibrationRun Calibration, ReportFiles Files) CalibrateAndWrite(string runDir, string modelPath, LabeledDataset val,
        double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision, EvaluationOptions? evaluation = null,
        CancellationToken cancellationToken = default)
    {
        var run = ModelCalibrator.Calibrate(modelPath, val, new CalibrationOptions
        {
            TargetPrecision = targetPrecision,
            Evaluation = evaluation ?? new EvaluationOptions(),
        }, cancellationToken);
        var files = ReportWriter.Write(runDir, run.After, run.Fit);
        return (run, files);
    }
}
