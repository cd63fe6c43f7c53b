using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.TestSupport;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Reporting;

namespace FmaEdge.Training.Tests;

public sealed partial class ReportWriterTests(EvaluationFixture fixture) : IClassFixture<EvaluationFixture>
{
    private static string History(int epochs) => new JsonObject
    {
        ["epochs"] = new JsonArray(Enumerable.Range(1, epochs).Select(e => (JsonNode)new JsonObject
        {
            ["epoch"] = e,
            ["seconds"] = 40.5,
            ["lr"] = 1e-3 * Math.Cos(e / (double)epochs * Math.PI / 2),
            ["train_loss"] = 3.0 / e,
            ["train_loss_per_level"] = new JsonArray(1.0 / e, 1.2 / e, 1.5 / e),
            ["val_loss"] = 3.2 / e + 0.1,
            ["val_top1"] = new JsonArray(0.8 + 0.02 * e, 0.5 + 0.04 * e, 0.3 + 0.05 * e),
            ["images_per_sec"] = 110 + e,
        }).ToArray()),
    }.ToJsonString();

    private (EvaluationResult Result, CalibrationResult Fit) Calibrated()
    {
        var before = ModelEvaluator.Evaluate(fixture.ModelPath, TestPaths.DatasetVal);
        var fit = DecodingCalibrator.Calibrate(before.Model.Tree, before.Decoding, true, before.RawOutputs, before.Labels);
        return (before.Redecode(fit.Decoding), fit);
    }

    [Fact]
    public void Write_RunWithHistoryAndCalibration_JsonAndSelfContainedHtml()
    {
        using var run = new TempFolder("report");
        File.WriteAllText(Path.Combine(run.Path, ReportWriter.HistoryFileName), History(6));
        var (result, fit) = Calibrated();

        var files = ReportWriter.Write(run.Path, result, fit);

        var json = JsonNode.Parse(File.ReadAllText(files.Json))!.AsObject();
        Assert.Equal(6, json["history"]!["epochs"]!.AsArray().Count);
        Assert.Equal(0.99, json["calibration"]!["target_precision"]!.GetValue<double>());
        Assert.Equal(result.Metrics.PathAccuracy, json["path_accuracy"]!.GetValue<double>());

        var html = File.ReadAllText(files.Html);
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        Assert.EndsWith("</html>\n", html, StringComparison.Ordinal);
        foreach (var header in new[] { "Top-1", "Top-2", "Top-3", "Top-4", "Top-5" })
        {
            Assert.Contains($"<th>{header}</th>", html, StringComparison.Ordinal);
        }

        // The seed-style table shows each level's top-1 as a percentage with two decimals.
        foreach (var level in result.Metrics.Levels)
        {
            Assert.Contains($"<td class=\"l\">{level.Name}</td><td>{level.Classes}</td><td><b>{level.Top1 * 100:0.00}%</b>", html, StringComparison.Ordinal);
        }

        Assert.Equal(result.Metrics.Levels.Count, Regex.Count(html, "<svg class=\"heat\""));
        Assert.True(Regex.Count(html, "<svg class=\"chart\"") >= 4);
        Assert.Contains("<polyline", html, StringComparison.Ordinal);
        Assert.Contains("Most confused pairs", html, StringComparison.Ordinal);
        Assert.Contains("Gaussian nearest centroid", html, StringComparison.Ordinal);
        AssertSelfContainedAndWellFormed(html);
    }

    [Fact]
    public void Write_NoHistory_SaysSoAndStillWritesBothFiles()
    {
        using var run = new TempFolder("report-nohist");
        var result = ModelEvaluator.Evaluate(fixture.ModelPath, TestPaths.DatasetVal);

        var files = ReportWriter.Write(run.Path, result);

        var html = File.ReadAllText(files.Html);
        Assert.Contains("No training history", html, StringComparison.Ordinal);
        Assert.Contains("not calibrated", html, StringComparison.Ordinal);
        Assert.Null(JsonNode.Parse(File.ReadAllText(files.Json))!["history"]);
        AssertSelfContainedAndWellFormed(html);
    }

    [Fact]
    public void Write_BrokenHistoryFile_ReportsTheProblemInsteadOfFailing()
    {
        using var run = new TempFolder("report-badhist");
        File.WriteAllText(Path.Combine(run.Path, ReportWriter.HistoryFileName), "{ \"epochs\": [ {");
        var result = ModelEvaluator.Evaluate(fixture.ModelPath, TestPaths.DatasetVal);

        var files = ReportWriter.Write(run.Path, result);

        Assert.Contains("history.json could not be read", File.ReadAllText(files.Html), StringComparison.Ordinal);
    }

    [Fact]
    public void RenderHtml_FromTheWrittenJson_ReproducesTheWrittenPage()
    {
        using var run = new TempFolder("report-rerender");
        File.WriteAllText(Path.Combine(run.Path, ReportWriter.HistoryFileName), History(3));
        var (result, fit) = Calibrated();
        var files = ReportWriter.Write(run.Path, result, fit);

        var again = ReportWriter.RenderHtml(JsonNode.Parse(File.ReadAllText(files.Json))!.AsObject());

        Assert.Equal(File.ReadAllText(files.Html), again);
    }

    [Fact]
    public void CalibrateAndWrite_ExportedModelInRunDir_CalibratesInPlaceAndReports()
    {
        using var run = new TempFolder("report-run");
        var model = Path.Combine(run.Path, "model.onnx");
        File.Copy(fixture.ModelPath, model);
        File.WriteAllText(Path.Combine(run.Path, ReportWriter.HistoryFileName), History(2));

        var (calibration, files) = RunReport.CalibrateAndWrite(run.Path, model, TestPaths.DatasetVal, 0.98);

        Assert.Equal(0.98, Core.Contract.ModelContract.Load(model).Manifest.Decoding.TargetPrecision);
        var json = JsonNode.Parse(File.ReadAllText(files.Json))!.AsObject();
        Assert.Equal(calibration.Written.Sha256, json["model"]!["sha256"]!.GetValue<string>());
        Assert.Equal(0.98, json["decoding"]!["target_precision"]!.GetValue<double>());
        Assert.Equal(calibration.After.Metrics.Coarse.Precision, json["coarse"]!["precision"]!.GetValue<double>());
        Assert.True(json["coarse"]!["precision"]!.GetValue<double>() >= 0.98);
        Assert.Equal(2, json["history"]!["epochs"]!.AsArray().Count);
        Assert.Contains("fitted for 98.00% precision", File.ReadAllText(files.Html), StringComparison.Ordinal);
    }

    private static void AssertSelfContainedAndWellFormed(string html)
    {
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<link", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(" src=", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("http://", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("https://", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("url(", html, StringComparison.OrdinalIgnoreCase);
        foreach (var tag in new[] { "section", "table", "tr", "svg", "details", "main" })
        {
            Assert.Equal(Regex.Count(html, $"<{tag}[ >]"), Regex.Count(html, $"</{tag}>"));
        }

        // Every inline SVG is well-formed XML (browsers render a broken one as nothing).
        foreach (Match svg in SvgPattern().Matches(html))
        {
            XElement.Parse(svg.Value.Replace("&nbsp;", " ", StringComparison.Ordinal));
        }
    }

    [GeneratedRegex("<svg[^>]*>.*?</svg>", RegexOptions.Singleline)]
    private static partial Regex SvgPattern();
}
