using FmaEdge.Core.Contract;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using FmaEdge.Training.Calibration;
using FmaEdge.Training.Evaluation;

namespace FmaEdge.Training.Tests;

/// <summary>The guaranteed calibration on the shipped model's real outputs (a stratified third of val, through ONNX
/// Runtime): never looser than the point estimate, stored in the model with its confidence, and the repeated-split
/// experiment runs on those outputs.</summary>
public sealed class GuaranteedCalibrationTests : IDisposable
{
    private static readonly Lazy<EvaluationResult> Outputs = new(() =>
    {
        var model = ModelContract.Load(TestPaths.DemoModel);
        var (_, third) = DatasetLoader.ScanFolder(TestPaths.DatasetVal, model.Tree).SplitStratified(0.34, seed: 1);
        return ModelEvaluator.Evaluate(TestPaths.DemoModel, third);
    });

    private readonly TempFolder _temp = new("guarantee");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Calibrate_ShippedModelRealOutputs_GuaranteedThresholdsNeverLooserThanThePointEstimate()
    {
        var e = Outputs.Value;
        var tree = e.Model.Tree;
        var logits = EvaluationResult.OutputsAreLogits(e.Model);

        var point = DecodingCalibrator.Calibrate(tree, e.Decoding, logits, e.RawOutputs, e.Labels, 0.95, confidence: 0);
        var guaranteed = DecodingCalibrator.Calibrate(tree, e.Decoding, logits, e.RawOutputs, e.Labels, 0.95, confidence: 0.9);

        // Same temperatures, so the leaf level sees the same images under both: the guarantee can only raise its bar.
        Assert.Equal(point.Decoding.Temperatures, guaranteed.Decoding.Temperatures);
        Assert.True(guaranteed.Thresholds.Thresholds[^1] >= point.Thresholds.Thresholds[^1]);
        Assert.True(guaranteed.After.Coarse.CoverageByLevel[^1] <= point.After.Coarse.CoverageByLevel[^1]);
        Assert.All(guaranteed.Thresholds.PrecisionLowerBoundByLevel, b => Assert.True(b is null || b >= 0.95));
        Assert.Equal(0.9, guaranteed.Decoding.Confidence);
        Assert.Null(point.Decoding.Confidence);
    }

    [Fact]
    public void CalibrationExperiment_ShippedModelRealOutputs_CountsMissesForBothMethodsOverEverySplit()
    {
        var e = Outputs.Value;
        var cache = Path.Combine(_temp.Path, "outputs.json");
        CalibrationExperiment.WriteCache(cache, e.Model, e.Images, e.RawOutputs);
        var (images, outputs) = CalibrationExperiment.ReadCache(cache, e.Model)!.Value;

        var r = CalibrationExperiment.Run(e.Model, images, outputs, splits: 6, seed: 3, calibrationFraction: 0.5, targetPrecision: 0.95, confidence: 0.9);

        Assert.Equal(e.RawOutputs.Select(o => o.SelectMany(x => x)), outputs.Select(o => o.SelectMany(x => x)));
        Assert.Equal([0.0, 0.9], r.Methods.Select(m => m.Confidence));
        Assert.All(r.Methods, m => Assert.InRange(m.BelowTarget, 0, 6));
        Assert.All(r.Methods, m => Assert.InRange(m.MeanCoverage, 0.0, 1.0));
        Assert.Contains("clopper-pearson-fixed-sequence, confidence 0.9", CalibrationExperiment.ToMarkdown(r, e.Model.Tree.Levels.Select(l => l.Name).ToList()));
    }
}
