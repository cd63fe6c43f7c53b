using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Inference;
using FmaEdge.Training.Reporting;
using FmaEdge.Vision;

namespace FmaEdge.Training.Evaluation;

/// <summary>The handler of <c>fma-train eval --model FILE.onnx --data DIR|CSV --json OUT.json [--html OUT.html]
/// [--batch N] [--providers cpu,cuda,...]</c>. Returns the process exit code; messages go to the given writers. Stateless.</summary>
public static class EvalCommand
{
    /// <summary>Exit code for success.</summary>
    public const int Ok = 0;

    /// <summary>Exit code for a bad model, dataset or option (the message says which).</summary>
    public const int Failed = 1;

    /// <summary>The failures the model-file commands (eval, calibrate, calibration-experiment, quantize) report as one
    /// line and exit code <see cref="Failed"/>: a bad model, tree, dataset, image, option or file.</summary>
    internal static bool IsInputError(Exception e) => e is InvalidModelException or TaxonomyException or ArgumentException or IOException
        or UnauthorizedAccessException or InvalidOperationException or ImageDecodeException;

    /// <summary>Evaluates the model, writes the eval JSON (and the HTML report when asked) and prints a summary.</summary>
    public static int Run(string modelPath, string dataPath, string jsonOut, string? htmlOut = null, int batchSize = 32,
        IReadOnlyList<string>? providers = null, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            var options = new EvaluationOptions
            {
                BatchSize = batchSize,
                Inference = new InferenceOptions { Providers = [.. providers ?? [ExecutionProviders.Cpu]] },
                Progress = new ConsoleProgress(output, "eval"),
            };
            var result = ModelEvaluator.Evaluate(modelPath, dataPath, options, cancellationToken);
            var doc = EvalReport.Build(result);
            EvalReport.WriteFile(doc, jsonOut);
            output.WriteLine($"wrote {Path.GetFullPath(jsonOut)}");
            if (htmlOut is not null)
            {
                ReportWriter.WriteHtml(doc, htmlOut);
                output.WriteLine($"wrote {Path.GetFullPath(htmlOut)}");
            }

            PrintSummary(result, output);
            return Ok;
        }
        catch (Exception e) when (IsInputError(e))
        {
            error.WriteLine($"fma-train eval: {e.Message}");
            return Failed;
        }
    }

    /// <summary>The seed-style table and the headline numbers, as plain text.</summary>
    public static void PrintSummary(EvaluationResult result, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(output);
        var m = result.Metrics;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{m.Images} images ({result.Skipped.Count} skipped) on {result.ExecutionProvider}, model {result.Model.Manifest.Model.Id} ({result.Model.ShortHash})"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"level",-22} {"Top1",7} {"Top2",7} {"Top3",7} {"Top4",7} {"Top5",7} {"path-dec",8}"));
        foreach (var l in m.Levels)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{l.Name,-22} {l.Top1 * 100,6:F2}% {l.Top2 * 100,6:F2}% {l.Top3 * 100,6:F2}% {l.Top4 * 100,6:F2}% {l.Top5 * 100,6:F2}% {l.ConsistentAccuracy * 100,7:F2}%"));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"path accuracy {m.PathAccuracy * 100:F2}% (argmax {m.PathAccuracyArgmax * 100:F2}%), consistency {m.Consistency * 100:F2}%, " +
            $"mistake severity {m.MistakeSeverity:F3}, hF1 {m.HierarchicalF1 * 100:F2}%"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"coarse answers: coverage by level [{string.Join(", ", m.Coarse.CoverageByLevel.Select(c => (c * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"))}], " +
            $"precision {m.Coarse.Precision * 100:F2}%"));
        foreach (var s in result.Skipped.Take(20))
        {
            output.WriteLine($"skipped {s.Path}: {s.Reason} ({s.Message})");
        }

        if (result.Skipped.Count > 20)
        {
            output.WriteLine($"... and {result.Skipped.Count - 20} more skipped images (listed in the JSON)");
        }

        if (result.Timings is { } t)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{t.TotalSeconds:F1} s, {t.ImagesPerSecond:F1} images/s ({t.InferenceMsPerImage:F2} ms/image inference, {t.DecodeSeconds:F1} s decoding)"));
        }
    }
}

/// <summary>Prints "eval 128/859" lines at most every 10 % (plain text, fine for logs and terminals).</summary>
internal sealed class ConsoleProgress(TextWriter output, string label) : IProgress<(int Done, int Total)>
{
    private int _lastDecile = -1;

    public void Report((int Done, int Total) value)
    {
        var decile = value.Total == 0 ? 10 : value.Done * 10 / value.Total;
        if (decile != _lastDecile)
        {
            _lastDecile = decile;
            output.WriteLine($"{label} {value.Done}/{value.Total}");
        }
    }
}
