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
        double targetPrecision = ThresholdCalibrator.DefaultTargetPrecision, double confidence = ThresholdCalibrator.DefaultConfidence,
        EvaluationOptions? evaluation = null, CancellationToken cancellationToken = default)
    {
        var run = ModelCalibrator.Calibrate(modelPath, val, new CalibrationOptions
        {
            TargetPrecision = targetPrecision,
            Confidence = confidence,
            Evaluation = evaluation ?? new EvaluationOptions(),
        }, cancellationToken);
        var files = ReportWriter.Write(runDir, run.After, run.Fit);
        return (run, files);
    }

    /// <summary>Calibrates on <paramref name="calib"/>, then evaluates the calibrated model on <paramref name="report"/>
    /// (images that did not fit the thresholds) and writes the run's report from that evaluation.</summary>
    public static (CalibrationRun Calibration, EvaluationResult Report, ReportFiles Files) CalibrateAndWrite(string runDir, string modelPath,
        LabeledDataset calib, LabeledDataset report, double targetPrecision, double confidence, EvaluationOptions? evaluation = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        var options = evaluation ?? new EvaluationOptions();
        var run = ModelCalibrator.Calibrate(modelPath, calib, new CalibrationOptions
        {
            TargetPrecision = targetPrecision,
            Confidence = confidence,
            Evaluation = options,
        }, cancellationToken);
        if (report.Images.Count == 0)
        {
            return (run, run.After, ReportWriter.Write(runDir, run.After, run.Fit));
        }

        var shown = ModelEvaluator.Evaluate(modelPath, report, options, cancellationToken);
        return (run, shown, ReportWriter.Write(runDir, shown, run.Fit, fittedOnReportImages: false));
    }
}
