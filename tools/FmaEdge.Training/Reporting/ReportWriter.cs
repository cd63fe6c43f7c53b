using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Metrics;
using FmaEdge.Training.Evaluation;
using static FmaEdge.Training.Reporting.Svg;

namespace FmaEdge.Training.Reporting;

/// <summary>The two report files written into a run folder.</summary>
public sealed record ReportFiles(string Json, string Html);

/// <summary>Writes a run's report: RUNDIR/report.json (the eval JSON of <see cref="EvalReport"/> plus "history" from
/// RUNDIR/history.json when present) and RUNDIR/report.html, a single self-contained page (inline CSS and SVG, no
/// scripts or external assets) rendered from that JSON. Stateless and thread-safe.</summary>
public static class ReportWriter
{
    public const string JsonFileName = "report.json";
    public const string HtmlFileName = "report.html";
    public const string HistoryFileName = "history.json";

    /// <summary>Builds the report document, adds the run's learning history and writes both files atomically.</summary>
    public static ReportFiles Write(string runDir, EvaluationResult evaluation, CalibrationResult? calibration = null, bool fittedOnReportImages = true)
    {
        ArgumentNullException.ThrowIfNull(runDir);
        var doc = EvalReport.Build(evaluation, calibration);
        if (doc["calibration"] is JsonObject section)
        {
            section["fitted_on_report_images"] = fittedOnReportImages;
        }

        var history = ReadHistory(runDir);
        doc["history"] = history;
        // The training machine when the history names it, else this one (an eval-only report).
        doc["environment"] = (history as JsonObject)?["environment"]?.DeepClone() ?? RunEnvironment.Capture();
        var json = Path.Combine(Path.GetFullPath(runDir), JsonFileName);
        var html = Path.Combine(Path.GetFullPath(runDir), HtmlFileName);
        EvalReport.WriteFile(doc, json);
        WriteHtml(doc, html);
        return new ReportFiles(json, html);
    }

    /// <summary>Renders a report (or eval) JSON document to a self-contained HTML file.</summary>
    public static void WriteHtml(JsonObject report, string htmlPath)
    {
        var full = Path.GetFullPath(htmlPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        AtomicFile.WriteAllText(full, RenderHtml(report));
    }

    /// <summary>RUNDIR/history.json parsed, or null when absent or unreadable (a report must not fail on it).</summary>
    public static JsonNode? ReadHistory(string runDir)
    {
        var path = Path.Combine(runDir, HistoryFileName);
        try
        {
            return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) : null;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return new JsonObject { ["error"] = $"history.json could not be read: {e.Message}" };
        }
    }

    /// <summary>The HTML page for a report document.</summary>
    public static string RenderHtml(JsonObject report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var m = report.Deserialize<MetricsReport>(EvalReport.JsonOptions) ?? throw new ArgumentException("the report holds no metrics", nameof(report));
        var model = report["model"] as JsonObject ?? [];
        var data = report["data"] as JsonObject ?? [];
        var decoding = report["decoding"] as JsonObject ?? [];
        var calibration = report["calibration"] as JsonObject;
        var training = model["training"] as JsonObject;
        var sb = new StringBuilder();
        var title = $"{Str(model, "id", "model")} — evaluation report";
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
        sb.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        sb.Append(CultureInfo.InvariantCulture, $"<title>{Esc(title)}</title><style>{Css}</style></head><body><main>");

        // Header.
        sb.Append(CultureInfo.InvariantCulture, $"<header><h1>{Esc(Str(model, "id", "model"))}</h1><p class=\"sub\">");
        sb.Append(string.Join(" · ", new[]
        {
            Str(model, "architecture"), Str(model, "head") is { Length: > 0 } h ? $"{h} heads" : "", Str(model, "loss") is { Length: > 0 } lo ? $"{lo} loss" : "",
            model["input_width"] is not null ? $"{Num(model, "input_width")}×{Num(model, "input_height")} px" : "", Str(model, "tree"),
        }.Where(s => s.Length > 0).Select(Esc)));
        sb.Append("</p><p class=\"meta\">");
        sb.Append(CultureInfo.InvariantCulture,
            $"{m.Images} images from <code>{Esc(Str(data, "path"))}</code> · evaluated {Esc(Str(report, "created_utc"))} on {Esc(Str(model, "execution_provider"))} · model sha256 <code>{Esc(Str(model, "sha256").Length >= 12 ? Str(model, "sha256")[..12] : Str(model, "sha256"))}</code>");
        sb.Append("</p></header>");

        // Headline cards.
        var leaf = m.Levels.Count > 0 ? m.Levels[^1] : null;
        var coarse = m.Coarse;
        var target = decoding["target_precision"]?.GetValue<double?>();
        sb.Append("<section class=\"cards\">");
        Card(sb, "Leaf accuracy", Pct(m.LeafAccuracyConsistent), $"path-consistent decoding; leaf argmax {Pct(m.LeafAccuracyArgmax)}");
        Card(sb, "Path accuracy", Pct(m.PathAccuracy), $"every level right; per-level argmax {Pct(m.PathAccuracyArgmax)}");
        Card(sb, "Consistency", Pct(m.Consistency), "per-level argmaxes form a valid path");
        Card(sb, "Mistake severity", F(m.MistakeSeverity, "0.00"), $"mean LCA height of {m.Mistakes} wrong leaves (1..{m.Levels.Count})");
        Card(sb, "Hierarchical F1", Pct(m.HierarchicalF1), "Kiritchenko, root excluded");
        if (coarse.CoverageByLevel.Count > 0)
        {
            var note = target is null ? $"coarse precision {Pct(coarse.Precision)} (uncalibrated thresholds)"
                : coarse.Answered == 0 ? $"no level reaches the {Pct(target.Value)} precision target"
                : $"at {Pct(coarse.Precision)} precision (target {Pct(target.Value)})";
            Card(sb, "Full answers", Pct(coarse.CoverageByLevel[^1]), note);
        }

        sb.Append("</section>");

        // Seed-style table.
        sb.Append("<section><h2>Per-level accuracy</h2><p class=\"note\">Top-k from each level's own probabilities (the seed's table). " +
                  "\"Path-decoded\" is the accuracy at that level of the path-consistent answer the daemon reports.</p>");
        sb.Append("<table class=\"num\"><thead><tr><th>Level</th><th>Classes</th><th>Top-1</th><th>Top-2</th><th>Top-3</th><th>Top-4</th><th>Top-5</th><th>Path-decoded</th><th>NLL</th><th>ECE</th></tr></thead><tbody>");
        foreach (var l in m.Levels)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"<tr><td class=\"l\">{Esc(l.Name)}</td><td>{l.Classes}</td><td><b>{Pct(l.Top1)}</b>{Bar(l.Top1)}</td><td>{Pct(l.Top2)}</td><td>{Pct(l.Top3)}</td><td>{Pct(l.Top4)}</td><td>{Pct(l.Top5)}</td><td>{Pct(l.ConsistentAccuracy)}</td><td>{F(l.Nll, "0.000")}</td><td>{Pct(l.Ece)}</td></tr>");
        }

        sb.Append("</tbody></table>");
        sb.Append(CultureInfo.InvariantCulture,
            $"<p class=\"note\">Path accuracy {Pct(m.PathAccuracy)} · consistency {Pct(m.Consistency)} · mistake severity {F(m.MistakeSeverity, "0.000")} (argmax leaf {F(m.MistakeSeverityArgmax, "0.000")}) · mean LCA height over all images {F(m.MeanLcaHeight, "0.000")} · hP {Pct(m.HierarchicalPrecision)} · hR {Pct(m.HierarchicalRecall)} · hF1 {Pct(m.HierarchicalF1)}</p></section>");

        CoarseSection(sb, m, decoding, calibration);
        HistorySection(sb, report["history"], m);

        // Confusion matrices.
        sb.Append("<section><h2>Confusion matrices</h2><p class=\"note\">Path-consistent answers. Hover a cell for its count and share.</p>");
        foreach (var l in m.Levels)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<h3>{Esc(l.Name)} <span class=\"muted\">({l.Classes} classes, {Pct(l.ConsistentAccuracy)} right)</span></h3><div class=\"scroll\">");
            sb.Append(Heatmap(l.Name, l.PerClass.Select(c => c.Label).ToList(), l.Confusion));
            sb.Append("</div>");
        }

        sb.Append("</section>");

        // Most confused pairs and worst classes.
        sb.Append("<section class=\"two\"><div><h2>Most confused pairs</h2>");
        if (m.MostConfused.Count == 0)
        {
            sb.Append("<p class=\"muted\">No confusions.</p>");
        }
        else
        {
            sb.Append("<table class=\"num\"><thead><tr><th>Level</th><th class=\"l\">True</th><th class=\"l\">Answered as</th><th>Images</th><th>Share of true</th></tr></thead><tbody>");
            foreach (var p in m.MostConfused)
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"<tr><td class=\"l\">{Esc(p.LevelName)}</td><td class=\"l\">{Esc(p.TrueLabel)}</td><td class=\"l\">{Esc(p.PredictedLabel)}</td><td>{p.Count}</td><td>{Pct(p.Share)}{Bar(p.Share, "#dc2626")}</td></tr>");
            }

            sb.Append("</tbody></table>");
        }

        sb.Append("</div><div><h2>Worst classes</h2>");
        if (leaf is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<p class=\"note\">{Esc(leaf.Name)}, lowest recall first.</p>");
            ClassTable(sb, leaf.PerClass.Where(c => c.Support > 0).OrderBy(c => c.Recall).ThenBy(c => c.F1).Take(8));
        }

        sb.Append("</div></section>");

        // All per-class figures, folded.
        sb.Append("<section><h2>Per-class precision and recall</h2>");
        foreach (var l in m.Levels)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<details{(l.Level == m.Levels.Count - 1 ? " open" : "")}><summary>{Esc(l.Name)}</summary>");
            ClassTable(sb, l.PerClass);
            sb.Append("</details>");
        }

        sb.Append("</section>");

        TrainingSection(sb, model, training, decoding);
        SkippedSection(sb, data, report["timings"] as JsonObject);
        sb.Append(CultureInfo.InvariantCulture,
            $"<footer>FmaEdge evaluation report · schema {Esc(Str(report, "schema"))} · rates are fractions of the {m.Images} evaluated images</footer>");
        sb.Append("</main></body></html>\n");
        return sb.ToString();
    }

    private static void CoarseSection(StringBuilder sb, MetricsReport m, JsonObject decoding, JsonObject? calibration)
    {
        var c = m.Coarse;
        var temps = decoding["temperatures"] as JsonArray;
        var target = decoding["target_precision"]?.GetValue<double?>();
        sb.Append("<section><h2>Coarse answers when unsure</h2><p class=\"note\">");
        sb.Append(target is null
            ? "Thresholds are not calibrated (run <code>fma-train calibrate</code>)."
            : $"Climbing from the leaf, the answer stops at the deepest level whose confidence passes its threshold; thresholds were fitted for {Pct(target.Value)} precision.");
        var confidence = decoding["confidence"]?.GetValue<double?>();
        if (target is not null)
        {
            sb.Append(confidence is { } conf
                ? $" Method: exact Clopper-Pearson bound with a fixed-sequence scan (Bonferroni over levels): with confidence {Pct(conf)}, every level's answers reach {Pct(target.Value)} precision on new images exchangeable with the calibration images (same line, camera and defect mix)."
                : " Method: point estimate (no confidence stated): the thresholds reach the target on the calibration images only; expect lower precision on new images.");
        }

        if (calibration is not null)
        {
            sb.Append(calibration["fitted_on_report_images"]?.GetValue<bool>() == false
                ? $" The temperatures and thresholds were fitted on {Dbl(calibration, "images"):0} separate calibration images, so the precision here is an independent check (these images chose the epoch, not the thresholds)."
                : " The thresholds were fitted on these same images, so the precision here is what the fit achieved on them, not an independent estimate.");
        }

        sb.Append("</p><table class=\"num\"><thead><tr><th>Level</th><th>Temperature</th><th>Threshold</th><th>Answered at ≥ this depth</th><th>Answered exactly here</th><th>Precision of those</th></tr></thead><tbody>");
        for (var l = 0; l < m.Levels.Count; l++)
        {
            var temp = temps is not null && l < temps.Count ? F(temps[l]!.GetValue<double>(), "0.000") : "1";
            var thr = l < c.Thresholds.Count ? DecodingSpec.FormatThreshold(c.Thresholds[l]) : "–";
            var cov = l < c.CoverageByLevel.Count ? c.CoverageByLevel[l] : 0;
            var exact = l + 1 < c.AnswersByDepth.Count ? c.AnswersByDepth[l + 1] : 0;
            var prec = l < c.PrecisionByDepth.Count && c.PrecisionByDepth[l] is { } p ? Pct(p) : "–";
            sb.Append(CultureInfo.InvariantCulture,
                $"<tr><td class=\"l\">{Esc(m.Levels[l].Name)}</td><td>{temp}</td><td>{thr}</td><td>{Pct(cov)}{Bar(cov, "#16a34a")}</td><td>{exact}</td><td>{prec}</td></tr>");
        }

        var none = c.AnswersByDepth.Count > 0 ? c.AnswersByDepth[0] : 0;
        sb.Append(CultureInfo.InvariantCulture,
            $"</tbody></table><p class=\"note\">Overall precision {Pct(c.Precision)} over {c.Answered} answers · {none} images without any answer · mean depth {F(c.MeanDepth, "0.00")} · coarse hF1 {Pct(c.HierarchicalF1)}</p>");
        if (calibration?["temperatures"] is JsonArray fits)
        {
            sb.Append("<p class=\"note\">Temperature fit (NLL before → after): ");
            sb.Append(string.Join(" · ", fits.OfType<JsonObject>().Select(f =>
                $"{Esc(Str(f, "name"))} T={F(Dbl(f, "temperature"), "0.000")} {F(Dbl(f, "nll_before"), "0.000")} → {F(Dbl(f, "nll_after"), "0.000")}")));
            sb.Append("</p>");
        }

        sb.Append("</section>");
    }

    private static void HistorySection(StringBuilder sb, JsonNode? history, MetricsReport m)
    {
        sb.Append("<section><h2>Learning curves</h2>");
        var epochs = (history as JsonObject)?["epochs"] as JsonArray;
        if (epochs is null || epochs.Count == 0)
        {
            var why = (history as JsonObject)?["error"]?.GetValue<string>();
            sb.Append(CultureInfo.InvariantCulture, $"<p class=\"muted\">{Esc(why ?? "No training history (history.json) beside this report.")}</p></section>");
            return;
        }

        var rows = epochs.OfType<JsonObject>().ToList();
        List<(double, double)> Series(Func<JsonObject, double?> pick) =>
            rows.Select(r => (X: Dbl(r, "epoch"), Y: pick(r))).Where(p => p.Y is not null).Select(p => (p.X, p.Y!.Value)).ToList();

        var charts = new List<string>
        {
            LineChart("Loss", "epoch",
            [
                new("train", Palette[0], Series(r => Opt(r, "train_loss"))),
                new("val", Palette[1], Series(r => Opt(r, "val_loss"))),
            ]),
        };
        var dependence = Series(r => Opt(r, "train_dependence"));
        if (dependence.Any(p => p.Item2 != 0))
        {
            // Only the dependence losses (dhc, dhc-soft) write a non-zero term; a flat zero line would be noise.
            charts[0] = LineChart("Loss", "epoch",
            [
                new("train", Palette[0], Series(r => Opt(r, "train_loss"))),
                new("val", Palette[1], Series(r => Opt(r, "val_loss"))),
                new("dependence", Palette[6], dependence, Dashed: true),
            ]);
        }
        var levels = rows.Select(r => (r["val_top1"] as JsonArray)?.Count ?? 0).DefaultIfEmpty(0).Max();
        if (levels > 0)
        {
            charts.Add(LineChart("Validation top-1", "epoch", Enumerable.Range(0, levels).Select(l => new ChartSeries(
                l < m.Levels.Count ? m.Levels[l].Name : $"L{l + 1}", Palette[l % Palette.Length],
                Series(r => (r["val_top1"] as JsonArray) is { } a && l < a.Count ? a[l]?.GetValue<double>() : null))).ToList(), percent: true));
        }

        var perLevelLoss = rows.Select(r => (r["train_loss_per_level"] as JsonArray)?.Count ?? 0).DefaultIfEmpty(0).Max();
        if (perLevelLoss > 0)
        {
            charts.Add(LineChart("Training loss per level", "epoch", Enumerable.Range(0, perLevelLoss).Select(l => new ChartSeries(
                l < m.Levels.Count ? m.Levels[l].Name : $"L{l + 1}", Palette[l % Palette.Length],
                Series(r => (r["train_loss_per_level"] as JsonArray) is { } a && l < a.Count ? a[l]?.GetValue<double>() : null))).ToList()));
        }

        charts.Add(LineChart("Learning rate", "epoch", [new("lr", Palette[3], Series(r => Opt(r, "lr")))]));
        charts.Add(LineChart("Training speed (images/s)", "epoch", [new("images/s", Palette[4], Series(r => Opt(r, "images_per_sec")))]));
        sb.Append("<div class=\"charts\">");
        foreach (var c in charts)
        {
            sb.Append("<div>").Append(c).Append("</div>");
        }

        var seconds = rows.Sum(r => Opt(r, "seconds") ?? 0);
        sb.Append(CultureInfo.InvariantCulture, $"</div><p class=\"note\">{rows.Count} epoch{(rows.Count == 1 ? "" : "s")}, {F(seconds / 60, "0.0")} minutes of training.</p></section>");
    }

    private static void TrainingSection(StringBuilder sb, JsonObject model, JsonObject? training, JsonObject decoding)
    {
        sb.Append("<section><h2>Model and recipe</h2><table class=\"kv\"><tbody>");
        foreach (var key in new[] { "id", "version", "created_utc", "architecture", "head", "loss", "opset", "bytes", "sha256", "path" })
        {
            if (model[key] is { } v && v.ToString() is { Length: > 0 } s)
            {
                sb.Append(CultureInfo.InvariantCulture, $"<tr><th>{Esc(key)}</th><td>{Esc(s)}</td></tr>");
            }
        }

        sb.Append(CultureInfo.InvariantCulture, $"<tr><th>decoding</th><td><code>{Esc(decoding.ToJsonString())}</code></td></tr>");
        if (training is not null)
        {
            foreach (var (key, value) in Flatten(training, ""))
            {
                sb.Append(CultureInfo.InvariantCulture, $"<tr><th>training.{Esc(key)}</th><td>{Esc(value)}</td></tr>");
            }
        }
        else
        {
            sb.Append("<tr><th>training</th><td class=\"muted\">the manifest carries no training summary</td></tr>");
        }

        sb.Append("</tbody></table></section>");
    }

    private static void SkippedSection(StringBuilder sb, JsonObject data, JsonObject? timings)
    {
        var skipped = data["skipped"] as JsonArray ?? [];
        sb.Append("<section><h2>Data and timing</h2><p class=\"note\">");
        sb.Append(CultureInfo.InvariantCulture, $"{Num(data, "images_listed")} images listed, {Num(data, "images_evaluated")} evaluated, {skipped.Count} skipped.");
        if (timings is not null)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $" {F(Dbl(timings, "total_seconds"), "0.0")} s in total, {F(Dbl(timings, "images_per_second"), "0.0")} images/s, {F(Dbl(timings, "inference_ms_per_image"), "0.00")} ms/image inference.");
        }

        sb.Append("</p>");
        if (skipped.Count > 0)
        {
            sb.Append("<table><thead><tr><th>Skipped image</th><th>Reason</th><th>Detail</th></tr></thead><tbody>");
            foreach (var s in skipped.OfType<JsonObject>().Take(200))
            {
                sb.Append(CultureInfo.InvariantCulture, $"<tr><td><code>{Esc(Str(s, "path"))}</code></td><td>{Esc(Str(s, "reason"))}</td><td>{Esc(Str(s, "message"))}</td></tr>");
            }

            sb.Append("</tbody></table>");
        }

        sb.Append("</section>");
    }

    private static void ClassTable(StringBuilder sb, IEnumerable<ClassMetrics> classes)
    {
        sb.Append("<table class=\"num\"><thead><tr><th>Class</th><th>Images</th><th>Recall</th><th>Precision</th><th>F1</th></tr></thead><tbody>");
        foreach (var c in classes)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"<tr><td class=\"l\" title=\"{Esc(c.Path)}\">{Esc(c.Label)}</td><td>{c.Support}</td><td>{Pct(c.Recall)}{Bar(c.Recall, c.Recall < 0.5 ? "#dc2626" : "#2563eb")}</td><td>{Pct(c.Precision)}</td><td>{Pct(c.F1)}</td></tr>");
        }

        sb.Append("</tbody></table>");
    }

    private static void Card(StringBuilder sb, string label, string value, string note) =>
        sb.Append(CultureInfo.InvariantCulture, $"<div class=\"card\"><div class=\"k\">{Esc(label)}</div><div class=\"v\">{Esc(value)}</div><div class=\"n\">{Esc(note)}</div></div>");

    private static IEnumerable<(string Key, string Value)> Flatten(JsonObject o, string prefix)
    {
        foreach (var (k, v) in o)
        {
            var key = prefix + k;
            if (v is JsonObject child)
            {
                foreach (var x in Flatten(child, key + "."))
                {
                    yield return x;
                }
            }
            else
            {
                yield return (key, v switch
                {
                    JsonValue jv when jv.TryGetValue<string>(out var str) => str,
                    JsonValue jv when jv.TryGetValue<double>(out var d) && d != Math.Round(d) => F(d, "0.####"),
                    null => "null",
                    _ => v.ToJsonString(),
                });
            }
        }
    }

    private static string Pct(double v) => double.IsFinite(v) ? F(v * 100, "0.00") + "%" : "–";

    private static string Str(JsonObject o, string key, string fallback = "") =>
        o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : o[key]?.ToJsonString() ?? fallback;

    private static string Num(JsonObject o, string key) => o[key]?.ToJsonString() ?? "?";

    private static double Dbl(JsonObject o, string key) => Opt(o, key) ?? double.NaN;

    private static double? Opt(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    internal const string Css = """
        :root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--accent:#2563eb}
        *{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
        main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
        header{border-bottom:1px solid var(--line);padding-bottom:14px;margin-bottom:18px}
        h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 10px}h3{font-size:15px;margin:18px 0 6px}
        .sub{margin:0;color:#334155;font-weight:500}.meta,.note,.muted{color:var(--muted)}.meta{margin:4px 0 0;font-size:13px}.note{font-size:13px}
        section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:16px 0;box-shadow:0 1px 2px rgba(15,23,42,.04)}
        section.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;background:none;border:0;box-shadow:none;padding:0}
        .card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px}
        .card .k{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}.card .v{font-size:26px;font-weight:650;margin:2px 0}.card .n{font-size:12px;color:var(--muted)}
        section.two{display:grid;grid-template-columns:1fr 1fr;gap:24px}@media(max-width:900px){section.two{grid-template-columns:1fr}}
        table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
        thead th{background:#f1f5f9;font-weight:600;color:#334155;position:sticky;top:0}
        table.num td,table.num th{text-align:right;font-variant-numeric:tabular-nums}table.num td.l,table.num th.l,table.num th:first-child{text-align:left}
        table.kv th{width:220px;color:#334155;font-weight:600}table.kv td{word-break:break-all}
        code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f5f9;padding:1px 4px;border-radius:4px}
        .bar{display:inline-block;width:60px;height:6px;background:#e2e8f0;border-radius:3px;margin-left:8px;vertical-align:middle;overflow:hidden}.bar span{display:block;height:100%}
        .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:14px}
        svg.chart{width:100%;height:auto;background:#fff}svg text{font-family:inherit}
        .ct{font-size:13px;font-weight:600;fill:#0f172a}.tick{font-size:10.5px;fill:#475569}.legend{font-size:11px;fill:#334155}
        .grid{stroke:#eef2f7}.axis{stroke:#94a3b8}.cell{font-size:10px;fill:#0f172a}.cell.inv{fill:#fff}
        .scroll{overflow-x:auto}svg.heat{max-width:100%;height:auto}
        details{margin:6px 0}summary{cursor:pointer;font-weight:600;padding:4px 0}
        footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
        @media print{body{background:#fff}section{box-shadow:none;break-inside:avoid}}
        """;
}
