using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using FmaEdge.Training.Calibration;
using FmaEdge.Training.Evaluation;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Training.Tests;

public sealed class EvaluationCalibrateTests(EvaluationFixture fixture) : IClassFixture<EvaluationFixture>
{
    [Fact]
    public void Calibrate_RealVal_GraphKeptBitForBitOnlyManifestChanges()
    {
        var source = fixture.CopyModel();
        var original = File.ReadAllBytes(source);
        var output = Path.Combine(fixture.Folder.Path, $"calibrated-{Guid.NewGuid():N}.onnx");

        var run = ModelCalibrator.Calibrate(source, TestPaths.DatasetVal, new CalibrationOptions { OutputPath = output, TargetPrecision = 0.95 });

        Assert.Equal(original, File.ReadAllBytes(source));
        var before = ModelProto.Parser.ParseFrom(original);
        var after = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        Assert.Equal(before.Graph.ToByteArray(), after.Graph.ToByteArray());
        Assert.Equal(before.OpsetImport, after.OpsetImport);
        Assert.Equal((before.IrVersion, before.ProducerName), (after.IrVersion, after.ProducerName));
        Assert.Equal(before.MetadataProps.Select(p => p.Key), after.MetadataProps.Select(p => p.Key));

        var oldManifest = ModelContract.Load(source).Manifest;
        var written = ModelContract.Load(output);
        Assert.Equal(run.Written.Sha256, written.Sha256);
        var d = written.Manifest.Decoding;
        Assert.Equal(0.95, d.TargetPrecision);
        Assert.Equal(run.Fit.Decoding.Temperatures, d.Temperatures);
        Assert.Equal(run.Fit.Decoding.Thresholds, d.Thresholds);
        Assert.NotEqual(oldManifest.Decoding.Thresholds, d.Thresholds);
        // Everything but the decoding spec and the training summary is as it was.
        Assert.Equal((oldManifest with { Decoding = d, Training = written.Manifest.Training }).ToJson(), written.Manifest.ToJson());
        Assert.Equal(oldManifest.Training!["recipe"]!.ToJsonString(), written.Manifest.Training!["recipe"]!.ToJsonString());
        Assert.Equal(0.95, written.Manifest.Training![ModelCalibrator.TrainingKey]!["target_precision"]!.GetValue<double>());
    }

    [Fact]
    public void Calibrate_RealVal_ReEvaluatedThroughOnnxTheThresholdsReachTheTarget()
    {
        var output = Path.Combine(fixture.Folder.Path, $"calibrated-{Guid.NewGuid():N}.onnx");

        var run = ModelCalibrator.Calibrate(fixture.ModelPath, TestPaths.DatasetVal, new CalibrationOptions { OutputPath = output, TargetPrecision = 0.95 });
        var again = ModelEvaluator.Evaluate(output, TestPaths.DatasetVal);

        Assert.All(run.Fit.Temperatures, t => Assert.True(t.NllAfter <= t.NllBefore));
        Assert.True(run.Fit.Thresholds.ReachedTarget.All(x => x));
        var coarse = again.Metrics.Coarse;
        Assert.True(coarse.Precision >= 0.95, $"precision {coarse.Precision}");
        Assert.All(coarse.PrecisionByDepth, p => Assert.True(p is null || p >= 0.95));
        Assert.Equal(run.Fit.Thresholds.Coverage, coarse.CoverageByLevel[0], 9);
        Assert.Equal(run.After.Metrics.Coarse.CoverageByLevel, coarse.CoverageByLevel);

        // The uncalibrated model answers every image at full depth with the leaf accuracy as precision.
        Assert.Equal(1.0, run.Before.Metrics.Coarse.CoverageByLevel[^1]);
        Assert.True(run.Before.Metrics.Coarse.Precision < 0.95);
        Assert.True(coarse.CoverageByLevel[0] > 0.3, $"coverage {coarse.CoverageByLevel[0]}");
    }

    [Fact]
    public void Calibrate_InMemoryStratifiedSplit_UsesExactlyThoseImages()
    {
        var output = Path.Combine(fixture.Folder.Path, $"split-{Guid.NewGuid():N}.onnx");
        var (_, half) = DatasetLoader.ScanFolder(TestPaths.DatasetVal).SplitStratified(0.5, seed: 3);

        var run = ModelCalibrator.Calibrate(fixture.ModelPath, half, new CalibrationOptions { OutputPath = output });

        Assert.Equal(half.Images.Select(i => i.Path), run.Before.Images.Select(i => i.Path));
        Assert.Equal(half.Images.Count, run.Fit.Thresholds.Images);
        Assert.Equal(0.99, ModelContract.Load(output).Manifest.Decoding.TargetPrecision);
    }

    [Fact]
    public void Calibrate_DatasetLabelledInAnotherTree_RefusedBeforeWriting()
    {
        var output = Path.Combine(fixture.Folder.Path, $"othertree-{Guid.NewGuid():N}.onnx");
        var renamed = DatasetLoader.ScanFolder(TestPaths.DatasetVal, levelNames: ["material", "family", "type"]);

        Assert.Throws<ArgumentException>(() => ModelCalibrator.Calibrate(fixture.ModelPath, renamed, new CalibrationOptions { OutputPath = output }));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void CalibrateCommandRun_InPlace_ReplacesTheFileAtomicallyAndLeavesNoTempFiles()
    {
        var model = ModelInItsOwnFolder("inplace");
        var dir = Path.GetDirectoryName(model)!;
        var output = new StringWriter();
        var error = new StringWriter();

        var code = CalibrateCommand.Run(model, TestPaths.DatasetVal, output: output, error: error);

        Assert.True(code == EvalCommand.Ok, error.ToString());
        Assert.Equal(["model.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
        var written = ModelContract.Load(model);
        Assert.Equal(0.99, written.Manifest.Decoding.TargetPrecision);
        Assert.All(written.Manifest.Decoding.Thresholds, t => Assert.True(t is >= 0 and <= 1 or DecodingSpec.NeverAnswer, $"threshold {t}"));
        Assert.Contains("threshold", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void CalibrateCommandRun_TrainingTreeWithFractionAndReport_FitsOnTheTrainersCalibrationPartAndRewritesTheReport()
    {
        var model = ModelInItsOwnFolder("rundir");
        var dir = Path.GetDirectoryName(model)!;
        File.WriteAllText(Path.Combine(dir, "history.json"), """{"epochs": [], "note": "from the run"}""");
        var output = new StringWriter();
        var error = new StringWriter();

        var code = CalibrateCommand.Run(model, TestPaths.DatasetTrain, output: output, error: error, calibFraction: 0.15, reportData: TestPaths.DatasetVal);

        Assert.True(code == EvalCommand.Ok, error.ToString());
        // The same images `fma-train train --data TRAIN --calib-fraction 0.15` sets aside.
        var (_, _, calib) = new FmaEdge.Training.Data.DatasetSource { DataDir = TestPaths.DatasetTrain, CalibFraction = 0.15 }.LoadWithCalibration();
        var report = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "report.json")))!;
        Assert.Equal(calib.Images.Count, report["calibration"]!["images"]!.GetValue<int>());
        Assert.False(report["calibration"]!["fitted_on_report_images"]!.GetValue<bool>());
        Assert.Equal(Directory.EnumerateFiles(TestPaths.DatasetVal, "*.*", SearchOption.AllDirectories).Count(), report["images"]!.GetValue<int>());
        Assert.Equal("from the run", report["history"]!["note"]!.GetValue<string>());
        Assert.Equal(ModelContract.Load(model).Manifest.Decoding.Thresholds, report["decoding"]!["thresholds"]!.AsArray().Select(t => t!.GetValue<double>()));
        Assert.True(File.Exists(Path.Combine(dir, "report.html")));
        Assert.Contains("report images (not used to fit)", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void CalibrateCommandRun_MissingReportFolder_FailsBeforeRewritingTheModel()
    {
        var model = fixture.CopyModel();
        var bytes = File.ReadAllBytes(model);
        var error = new StringWriter();

        var code = CalibrateCommand.Run(model, TestPaths.DatasetVal, output: new StringWriter(), error: error,
            reportData: Path.Combine(fixture.Folder.Path, "no-such-folder"));

        Assert.Equal(EvalCommand.Failed, code);
        Assert.Contains("no-such-folder", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(model));
    }

    [Fact]
    public void CalibrateCommandRun_FractionOutOfRange_FailsAndLeavesModelAlone()
    {
        var model = fixture.CopyModel();
        var bytes = File.ReadAllBytes(model);
        var error = new StringWriter();

        var code = CalibrateCommand.Run(model, TestPaths.DatasetTrain, output: new StringWriter(), error: error, calibFraction: 1);

        Assert.Equal(EvalCommand.Failed, code);
        Assert.Contains("--calib-fraction 1 is outside [0, 1)", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(model));
    }

    [Fact]
    public void CalibrateCommandRun_TargetOutsideRange_FailsAndLeavesModelAlone()
    {
        var model = fixture.CopyModel();
        var bytes = File.ReadAllBytes(model);
        var error = new StringWriter();

        var code = CalibrateCommand.Run(model, TestPaths.DatasetVal, targetPrecision: 1.5, output: new StringWriter(), error: error);

        Assert.Equal(EvalCommand.Failed, code);
        Assert.Contains("target precision", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(model));
    }

    /// <summary>A copy of the fixture's model as FOLDER/model.onnx in a new folder of its own (a run folder).</summary>
    private string ModelInItsOwnFolder(string prefix)
    {
        var dir = Path.Combine(fixture.Folder.Path, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var model = Path.Combine(dir, "model.onnx");
        File.Copy(fixture.ModelPath, model);
        return model;
    }

    [Fact]
    public void WriteDecoding_SpecBreakingTheContract_ThrowsAndWritesNothing()
    {
        var model = fixture.CopyModel();
        var bytes = File.ReadAllBytes(model);
        var bad = new DecodingSpec { Temperatures = [1, 1, 1], Thresholds = [0.5, 2.0] };

        var e = Assert.Throws<InvalidModelException>(() => ModelCalibrator.WriteDecoding(model, model, bad));

        Assert.Contains(e.Report.Violations, v => v.Contains("thresholds", StringComparison.Ordinal));
        Assert.Equal(bytes, File.ReadAllBytes(model));
    }
}
