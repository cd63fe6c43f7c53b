using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;
using Spectre.Console;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge classify IMAGE... [--model FILE] [--json]</c>: the daemon's pipeline once, without MQTT.
/// Exit 0 when every image was classified, 1 when some could not be, 2 when no model could be loaded.</summary>
public static class ClassifyCommand
{
    public static Command Create(CliConsole console)
    {
        var images = new Argument<FileInfo[]>("images") { Arity = ArgumentArity.OneOrMore, Description = "Image files" };
        var model = new Option<FileInfo?>("--model", "-m") { Description = "Model file (default: the configured or newest model in the models folder)" };
        var json = new Option<bool>("--json") { Description = "Print results as JSON (one array, the daemon's result records)" };
        var config = FmaEdgeCli.ConfigOption();
        var cmd = new Command("classify", "Classify images once with the daemon's pipeline (no MQTT)") { images, model, json, config };
        cmd.SetAction((parse, ct) => RunAsync(console, parse.GetValue(images)!.Select(f => f.FullName).ToList(), parse.GetValue(model)?.FullName,
            parse.GetValue(config)?.FullName, parse.GetValue(json), ct));
        return cmd;
    }

    public static async Task<int> RunAsync(CliConsole console, IReadOnlyList<string> images, string? modelFile, string? configFile, bool json, CancellationToken ct)
    {
        FmaEdgeOptions options;
        try
        {
            options = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(configFile));
        }
        catch (ConfigurationErrorsException e)
        {
            await console.Error.WriteLineAsync(e.Message);
            return 2;
        }

        options.Sources.Clear();
        options.Models.Watch = false;
        options.Inference.WarmUpRuns = 0;
        if (modelFile is not null)
        {
            options.Models.Active = Path.GetFullPath(modelFile);
            options.Paths.ModelsDir = Path.GetDirectoryName(options.Models.Active)!;
        }

        OneShotReport report;
        try
        {
            report = await new OneShotClassifier(options).RunAsync(images, ct);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            await console.Error.WriteLineAsync("fma-edge: cannot load a model: " + e.Message);
            return 2;
        }

        if (json)
        {
            var doc = new
            {
                model = new { id = report.ModelId, sha256 = report.ModelSha256, provider = report.ExecutionProvider, providerNotes = report.ProviderNotes },
                results = report.Items.Select(i => new
                {
                    path = i.Path,
                    status = i.Outcome.Status.ToString().ToLowerInvariant(),
                    reason = i.Outcome.Reason,
                    result = i.Result,
                }),
                latency = report.Latency,
            };
            await console.Out.WriteLineAsync(JsonSerializer.Serialize(doc, JsonFolderResultSink.Json));
        }
        else
        {
            Render(console.Ansi, report);
        }

        return report.Items.All(i => i.Outcome.Status == WorkStatus.Published) ? 0 : 1;
    }

    private static void Render(IAnsiConsole ansi, OneShotReport report)
    {
        var inv = CultureInfo.InvariantCulture;
        ansi.MarkupLine($"model [bold]{Markup.Escape(report.ModelId)}[/] {report.ModelSha256[..12]} on {report.ExecutionProvider}");
        var levels = report.Items.Select(i => i.Result).FirstOrDefault(r => r is not null)?.Prediction.Levels.Select(l => l.LevelName).ToList() ?? [];
        var table = new Table().AddColumn("image").AddColumn("answer (path)").AddColumn("coarse");
        foreach (var l in levels)
        {
            table.AddColumn(Markup.Escape(l));
        }

        table.AddColumn("ms");
        foreach (var item in report.Items)
        {
            var cells = new List<string> { Markup.Escape(Path.GetFileName(item.Path)) };
            if (item.Result is { } r)
            {
                var leaf = r.Prediction.Path[^1];
                var coarse = r.Prediction.Coarse;
                cells.Add(Markup.Escape($"{string.Join(" / ", r.Prediction.Path.Select(n => n.Label))} ({leaf.Confidence.ToString("P1", inv)})"));
                cells.Add(Markup.Escape(coarse.Deepest is { } d ? $"{d.Label} @ depth {coarse.Depth} ({d.Confidence.ToString("P1", inv)})" : "unsure (depth 0)"));
                cells.AddRange(r.Prediction.Levels.Select(l => Markup.Escape($"{l.Label} {l.Confidence.ToString("P0", inv)}")));
                cells.Add(r.Latency.Total.ToString("F1", inv));
            }
            else
            {
                cells.Add($"[red]{Markup.Escape(item.Outcome.Status.ToString().ToLowerInvariant())}[/]");
                cells.Add(Markup.Escape(item.Outcome.Reason ?? ""));
                cells.AddRange(levels.Select(_ => ""));
                cells.Add("");
            }

            table.AddRow(cells.ToArray());
        }

        ansi.Write(table);
    }
}
