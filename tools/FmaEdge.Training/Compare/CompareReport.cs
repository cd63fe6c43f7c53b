using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Reporting;
using static FmaEdge.Training.Reporting.Svg;

namespace FmaEdge.Training.Compare;

/// <summary>Writes GRIDDIR/results.json, results.md (seed-style Top-1..Top-5 tables per level, a summary table and the
/// training-environment table; mean ± sample std over seeds) and results.html (the same, self-contained, with inline
/// SVG bar charts of leaf top-1 and coarse coverage with their spread). Stateless and thread-safe.</summary>
public static class CompareReport
{
    public const string JsonFile = "results.json";
    public const string MarkdownFile = "results.md";
    public const string HtmlFile = "results.html";

    public static void WriteAll(string gridDir, CompareResults results)
    {
        EvalReport.WriteFile(JsonSerializer.SerializeToNode(results, EvalReport.JsonOptions)!, Path.Combine(gridDir, JsonFile));
        AtomicFile.WriteAllText(Path.Combine(gridDir, MarkdownFile), Markdown(results));
        AtomicFile.WriteAllText(Path.Combine(gridDir, HtmlFile), Html(results));
    }

    /// <summary>The machine the grid ran on (the seed's "training environment").</summary>
    public static IReadOnlyDictionary<string, string> Environment()
    {
        var cpu = "";
        long memKb = 0;
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
            var mem = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            memKb = mem is null ? 0 : long.Parse(mem.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // Not Linux: leave them empty.
        }

        return new Dictionary<string, string>
        {
            ["cpu"] = cpu,
            ["cores"] = System.Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture),
            ["memory"] = memKb > 0 ? $"{memKb / (1024 * 1024.0):F1} GiB" : "",
            ["os"] = RuntimeInformation.OSDescription,
            ["runtime"] = RuntimeInformation.FrameworkDescription,
            ["device"] = "cpu unless the recipe says --device cuda",
            ["trainer"] = "fma-train (TorchSharp 0.107, libtorch 2.10); evaluation through ONNX Runtime",
        };
    }

    public static string Markdown(CompareResults r)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine("# Comparison grid").AppendLine();
        sb.AppendLine(inv, $"{r.Rows.Count} of {r.RowsPlanned} rows finished{(r.Failures.Count > 0 ? $", {r.Failures.Count} failed" : "")}; {r.Configs.Count} configurations; written {r.CreatedUtc}. ")
            .AppendLine("Mean ± sample standard deviation over seeds (n = number of seeds). Validation set, exported model through ONNX Runtime.").AppendLine();
        sb.AppendLine("Recipe (every row): `" + string.Join(' ', r.Recipe) + "`").AppendLine();
        sb.AppendLine("Reproduce a row: `" + r.RowCommand + "`").AppendLine();
        var levels = r.Configs.Count == 0 ? [] : r.Configs[0].LevelNames;
        for (var l = 0; l < levels.Count; l++)
        {
            sb.AppendLine(inv, $"## L{l + 1} {levels[l]}: Top-1..Top-5").AppendLine();
            sb.AppendLine("| backbone | head | loss | n | Top-1 | Top-2 | Top-3 | Top-4 | Top-5 | path-decoded |");
            sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
            foreach (var c in r.Configs.Where(c => c.Levels.Count > l))
            {
                sb.AppendLine(inv, $"| {c.Model} | {c.Head} | {c.Loss} | {c.Seeds.Count} | {string.Join(" | ", c.Levels[l].Select(Pm))} |");
            }

            sb.AppendLine();
        }

        sb.AppendLine("## Summary").AppendLine();
        sb.AppendLine("Leaf = deepest level. argmax = the leaf head's own top-1; path-decoded = the leaf of the path-consistent answer. " +
            "Coverage = share of images whose calibrated coarse answer reaches that level or deeper, at the precision shown (measured on the calibration set itself).").AppendLine();
        sb.AppendLine("| backbone | head | loss | n | leaf argmax | leaf path-decoded | path accuracy | consistency | mistake severity | hF1 | coverage L1 / L2 / L3 | coarse precision |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var c in r.Configs)
        {
            var leaf = c.Levels[^1];
            sb.AppendLine(inv, $"| {c.Model} | {c.Head} | {c.Loss} | {c.Seeds.Count} | {Pm(leaf[0])} | {Pm(leaf[5])} | {Pm(c.PathAccuracy)} | {Pm(c.Consistency)} | {Pm(c.MistakeSeverity, false)} | {Pm(c.HierarchicalF1)} | {string.Join(" / ", c.CoverageByLevel.Select(s => Pm(s)))} | {Pm(c.CoarsePrecision)} |");
        }

        sb.AppendLine().AppendLine("## Training environment").AppendLine();
        sb.AppendLine(string.Join("; ", r.Environment.Where(kv => kv.Value.Length > 0).Select(kv => $"{kv.Key}: {kv.Value}"))).AppendLine();
        sb.AppendLine("| backbone | head | loss | parameters (backbone) | model file | training time | images/s | peak memory (RSS) |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var c in r.Configs)
        {
            sb.AppendLine(inv, $"| {c.Model} | {c.Head} | {c.Loss} | {c.Parameters / 1e6:F2} M ({c.BackboneParameters / 1e6:F2} M) | {c.ModelBytes / (1024 * 1024.0):F1} MiB | {Time(c.TrainSeconds)} | {c.ImagesPerSecond.Mean:F1} | {c.PeakRssBytes.Mean / (1024 * 1024.0):F0} MiB |");
        }

        sb.AppendLine().AppendLine("Peak memory is the trainer process's VmHWM (whole row: decoding, training, export, calibration), sampled every 100 ms.");
        if (r.Failures.Count > 0)
        {
            sb.AppendLine().AppendLine("## Failed rows (rerun the same command to retry)").AppendLine();
            foreach (var f in r.Failures)
            {
                sb.AppendLine(inv, $"- `{f.Id}`: exit code {f.ExitCode}: {f.LastOutput}");
            }
        }

        sb.AppendLine().AppendLine("## Rows").AppendLine();
        sb.AppendLine("| row | seed | " + string.Join(" | ", levels.Select((n, l) => $"L{l + 1} top-1")) + " | path accuracy | training time | peak memory |");
        sb.AppendLine("|---|---|" + string.Concat(levels.Select(_ => "---|")) + "---|---|---|");
        foreach (var row in r.Rows)
        {
            sb.AppendLine(inv, $"| {row.Config} | {row.Seed} | {string.Join(" | ", row.Levels.Select(l => P(l.Top1)))} | {P(row.PathAccuracy)} | {row.TrainSeconds:F0} s | {(row.PeakRssBytes ?? 0) / (1024 * 1024.0):F0} MiB |");
        }

        return sb.ToString();
    }

    public static string Html(CompareResults r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        sb.Append(inv, $"<title>Comparison grid</title><style>{ReportWriter.Css}</style></head><body><main>");
        sb.Append(inv, $"<header><h1>Comparison grid</h1><p class=\"sub\">{r.Rows.Count} of {r.RowsPlanned} rows · {r.Configs.Count} configurations · mean ± std over seeds</p>");
        sb.Append(inv, $"<p class=\"meta\">Recipe: <code>{Esc(string.Join(' ', r.Recipe))}</code> · written {Esc(r.CreatedUtc)}</p></header>");
        if (r.Configs.Count > 0)
        {
            var depth = r.Configs.Min(c => c.Levels.Count);
            sb.Append("<section class=\"two\"><div>");
            sb.Append(Bars($"Leaf (L{depth}) top-1", r.Configs.Select(c => (c.Config, c.Levels[depth - 1][0])).ToList(), true));
            sb.Append("</div><div>");
            sb.Append(Bars("Path accuracy", r.Configs.Select(c => (c.Config, c.PathAccuracy)).ToList(), true));
            sb.Append("</div></section><section class=\"two\"><div>");
            sb.Append(Bars("Calibrated coarse answers: coverage at level 2 or deeper", r.Configs.Select(c => (c.Config, c.CoverageByLevel.Count > 1 ? c.CoverageByLevel[1] : Stat.Of([]))).ToList(), true));
            sb.Append("</div><div>");
            sb.Append(Bars("Mistake severity (lower is better)", r.Configs.Select(c => (c.Config, c.MistakeSeverity)).ToList(), false));
            sb.Append("</div></section>");

            for (var l = 0; l < depth; l++)
            {
                sb.Append(inv, $"<section><h2>L{l + 1} {Esc(r.Configs[0].LevelNames[l])}</h2><table class=\"num\"><thead><tr><th>Backbone</th><th>Head</th><th>Loss</th><th>n</th><th>Top-1</th><th>Top-2</th><th>Top-3</th><th>Top-4</th><th>Top-5</th><th>Path-decoded</th></tr></thead><tbody>");
                foreach (var c in r.Configs)
                {
                    sb.Append(inv, $"<tr><td class=\"l\">{Esc(c.Model)}</td><td class=\"l\">{Esc(c.Head)}</td><td class=\"l\">{Esc(c.Loss)}</td><td>{c.Seeds.Count}</td>");
                    sb.Append(string.Concat(c.Levels[l].Select(s => $"<td>{Esc(Pm(s))}</td>")));
                    sb.Append("</tr>");
                }

                sb.Append("</tbody></table></section>");
            }

            sb.Append("<section><h2>Summary</h2><table class=\"num\"><thead><tr><th>Backbone</th><th>Head</th><th>Loss</th><th>Leaf argmax</th><th>Leaf path-decoded</th><th>Path accuracy</th><th>Consistency</th><th>Mistake severity</th><th>hF1</th><th>Coverage by level</th><th>Coarse precision</th></tr></thead><tbody>");
            foreach (var c in r.Configs)
            {
                sb.Append(inv, $"<tr><td class=\"l\">{Esc(c.Model)}</td><td class=\"l\">{Esc(c.Head)}</td><td class=\"l\">{Esc(c.Loss)}</td><td>{Esc(Pm(c.Levels[^1][0]))}</td><td>{Esc(Pm(c.Levels[^1][5]))}</td><td>{Esc(Pm(c.PathAccuracy))}</td><td>{Esc(Pm(c.Consistency))}</td><td>{Esc(Pm(c.MistakeSeverity, false))}</td><td>{Esc(Pm(c.HierarchicalF1))}</td><td>{Esc(string.Join(" / ", c.CoverageByLevel.Select(s => Pm(s))))}</td><td>{Esc(Pm(c.CoarsePrecision))}</td></tr>");
            }

            sb.Append("</tbody></table></section>");
            sb.Append("<section><h2>Training environment</h2><p class=\"note\">");
            sb.Append(Esc(string.Join(" · ", r.Environment.Where(kv => kv.Value.Length > 0).Select(kv => $"{kv.Key}: {kv.Value}"))));
            sb.Append("</p><table class=\"num\"><thead><tr><th>Backbone</th><th>Head</th><th>Loss</th><th>Parameters</th><th>Backbone parameters</th><th>Model file</th><th>Training time</th><th>Images/s</th><th>Peak memory</th></tr></thead><tbody>");
            foreach (var c in r.Configs)
            {
                sb.Append(inv, $"<tr><td class=\"l\">{Esc(c.Model)}</td><td class=\"l\">{Esc(c.Head)}</td><td class=\"l\">{Esc(c.Loss)}</td><td>{c.Parameters / 1e6:F2} M</td><td>{c.BackboneParameters / 1e6:F2} M</td><td>{c.ModelBytes / (1024 * 1024.0):F1} MiB</td><td>{Esc(Time(c.TrainSeconds))}</td><td>{c.ImagesPerSecond.Mean:F1}</td><td>{c.PeakRssBytes.Mean / (1024 * 1024.0):F0} MiB</td></tr>");
            }

            sb.Append("</tbody></table><p class=\"note\">Peak memory: the row's trainer process VmHWM, sampled every 100 ms.</p></section>");
        }

        if (r.Failures.Count > 0)
        {
            sb.Append("<section><h2>Failed rows</h2><ul>");
            foreach (var f in r.Failures)
            {
                sb.Append(inv, $"<li><code>{Esc(f.Id)}</code>: exit code {f.ExitCode}: {Esc(f.LastOutput)}</li>");
            }

            sb.Append("</ul></section>");
        }

        sb.Append(inv, $"<section><h2>Reproduce</h2><p class=\"note\"><code>{Esc(r.RowCommand)}</code></p></section>");
        sb.Append("</main></body></html>");
        return sb.ToString();
    }

    /// <summary>Horizontal bars with a whisker from mean - std to mean + std and the seeds' min..max as a thin line.</summary>
    private static string Bars(string title, IReadOnlyList<(string Label, Stat Value)> items, bool percent)
    {
        const int W = 560, Label = 230, Row = 22, T = 34, R = 70;
        var h = T + (items.Count * Row) + 12;
        var max = percent ? 1.0 : Math.Max(1e-9, items.Where(i => double.IsFinite(i.Value.Max)).Select(i => i.Value.Max).DefaultIfEmpty(1).Max());
        var scale = (W - Label - R) / max;
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{Esc(title)}\"><text x=\"4\" y=\"20\" class=\"ct\">{Esc(title)}</text>");
        for (var i = 0; i < items.Count; i++)
        {
            var (label, s) = items[i];
            var y = T + (i * Row);
            var mean = double.IsFinite(s.Mean) ? s.Mean : 0;
            var color = Palette[i % Palette.Length];
            sb.Append(inv, $"<text x=\"{Label - 6}\" y=\"{y + 14}\" text-anchor=\"end\" font-size=\"11\">{Esc(label)}</text>");
            sb.Append(inv, $"<rect x=\"{Label}\" y=\"{y + 3}\" width=\"{F(mean * scale)}\" height=\"{Row - 8}\" fill=\"{color}\" opacity=\"0.8\"><title>{Esc(label)}: {Esc(Pm(s, percent))} (min {Esc(V(s.Min, percent))}, max {Esc(V(s.Max, percent))}, n {s.N})</title></rect>");
            if (s.N > 1)
            {
                var lo = Label + (Math.Max(0, s.Mean - s.Std) * scale);
                var hi = Label + (Math.Min(max, s.Mean + s.Std) * scale);
                var yc = y + (Row / 2) - 1;
                sb.Append(inv, $"<line x1=\"{F(lo)}\" x2=\"{F(hi)}\" y1=\"{yc}\" y2=\"{yc}\" stroke=\"#111\" stroke-width=\"1.5\"/>");
                sb.Append(inv, $"<line x1=\"{F(lo)}\" x2=\"{F(lo)}\" y1=\"{yc - 4}\" y2=\"{yc + 4}\" stroke=\"#111\"/><line x1=\"{F(hi)}\" x2=\"{F(hi)}\" y1=\"{yc - 4}\" y2=\"{yc + 4}\" stroke=\"#111\"/>");
            }

            sb.Append(inv, $"<text x=\"{F(Label + (mean * scale) + 4)}\" y=\"{y + 14}\" font-size=\"11\">{Esc(V(mean, percent))}</text>");
        }

        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string V(double v, bool percent) => !double.IsFinite(v) ? "–"
        : percent ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) + " %" : v.ToString("F3", CultureInfo.InvariantCulture);

    private static string P(double v) => V(v, true);

    /// <summary>"61.2 ± 1.3 %" (percent) or "1.640 ± 0.020".</summary>
    private static string Pm(Stat s) => Pm(s, true);

    private static string Pm(Stat s, bool percent)
    {
        if (s.N == 0 || !double.IsFinite(s.Mean))
        {
            return "–";
        }

        return percent
            ? string.Create(CultureInfo.InvariantCulture, $"{s.Mean * 100:F1} ± {s.Std * 100:F1} %")
            : string.Create(CultureInfo.InvariantCulture, $"{s.Mean:F3} ± {s.Std:F3}");
    }

    private static string Time(Stat s) => s.N == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{s.Mean / 60:F1} ± {s.Std / 60:F1} min");
}
