using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Training;

namespace FmaEdge.Training.Compare;

/// <summary>How a grid runs. <see cref="TrainerCommand"/> starts `fma-train` (e.g. ["/opt/fma-train"] or ["dotnet",
/// ".../fma-train.dll"]); <see cref="Recipe"/> holds the shared `train` arguments (data, img size, epochs, ...), which must
/// not set --model, --head, --loss, --bcnn, --seed, --out or --resume. Immutable.</summary>
public sealed record CompareOptions
{
    public string OutDir { get; init; } = "grid";
    public IReadOnlyList<CompareRow> Rows { get; init; } = [];
    public IReadOnlyList<string> Recipe { get; init; } = [];
    public IReadOnlyList<string> TrainerCommand { get; init; } = [];

    public static readonly IReadOnlyList<string> RowOptions = ["--model", "--head", "--loss", "--bcnn", "--seed", "--out", "--resume"];

    public void Validate()
    {
        if (Rows.Count == 0)
        {
            throw new ArgumentException("the grid has no rows");
        }

        if (TrainerCommand.Count == 0)
        {
            throw new ArgumentException("no trainer command to run the rows with");
        }

        var bad = Recipe.Where(a => RowOptions.Contains(a)).ToList();
        if (bad.Count > 0)
        {
            throw new ArgumentException($"the recipe may not set {string.Join(", ", bad)}: the grid sets them per row");
        }

        if (!Recipe.Contains("--val") && !Recipe.Contains("--val-fraction"))
        {
            throw new ArgumentException("a comparison needs validation data: pass --val DIR or --val-fraction F");
        }
    }
}

/// <summary>Runs a grid: each row is its own trainer run folder GRIDDIR/ROW-ID, trained in a child `fma-train train`
/// process (so its peak memory is its own), resumed with --resume when an earlier attempt left a checkpoint, and
/// skipped when ROW-ID/row.json says it finished. After every row GRIDDIR/results.json, .md and .html are rewritten,
/// so a stopped grid still has its tables. One grid per instance; not thread-safe.</summary>
public sealed class CompareRunner(CompareOptions options, TextWriter log)
{
    public const string RowFile = "row.json";

    public static string RowDir(string gridDir, CompareRow row) => Path.Combine(Path.GetFullPath(gridDir), row.Id);

    /// <summary>Runs (or resumes) every unfinished row and writes the results. Returns them; failed rows are listed
    /// in <see cref="CompareResults.Failures"/> and retried by the next run. Cancellation stops after the running
    /// row's trainer has checkpointed (it receives the same Ctrl-C) and throws.</summary>
    public CompareResults Run(CancellationToken ct)
    {
        options.Validate();
        var grid = Path.GetFullPath(options.OutDir);
        Directory.CreateDirectory(grid);
        var done = new List<CompareRowResult>();
        var failures = new List<CompareFailure>();
        var total = options.Rows.Count;
        for (var i = 0; i < total; i++)
        {
            ct.ThrowIfCancellationRequested();
            var row = options.Rows[i];
            var tag = $"[{i + 1}/{total}] {row.Id}";
            var dir = RowDir(grid, row);
            if (TryLoadRow(dir) is { } finished)
            {
                log.WriteLine($"{tag}: finished earlier, skipped (L{finished.Levels.Count} top-1 {Pct(finished.Levels[^1].Top1)})");
                done.Add(finished);
                continue;
            }

            var resume = File.Exists(Path.Combine(Trainer.LastDir(dir), Checkpoint.StateFile));
            log.WriteLine($"{tag}: {(resume ? "resuming from its last checkpoint" : "training")}");
            var (exit, peak, wall, tail) = RunTrainer(row, dir, resume, tag, ct);
            ct.ThrowIfCancellationRequested();
            if (exit != 0)
            {
                log.WriteLine($"{tag}: FAILED (exit code {exit}); a rerun retries it. Last output: {tail}");
                failures.Add(new CompareFailure(row.Id, row.Config, row.Seed, exit, tail));
            }
            else
            {
                try
                {
                    var result = Measure(row, dir, peak, wall);
                    EvalReport.WriteFile(JsonSerializer.SerializeToNode(result, EvalReport.JsonOptions)!, Path.Combine(dir, RowFile));
                    done.Add(result);
                    log.WriteLine($"{tag}: done in {wall:F0} s; L{result.Levels.Count} top-1 {Pct(result.Levels[^1].Top1)} (path-decoded {Pct(result.Levels[^1].PathDecoded)}), " +
                        $"path accuracy {Pct(result.PathAccuracy)}, peak {(peak ?? 0) / (1024 * 1024)} MiB");
                }
                catch (Exception e) when (e is IOException or JsonException or InvalidDataException or KeyNotFoundException or InvalidOperationException or NullReferenceException)
                {
                    log.WriteLine($"{tag}: FAILED reading the run's results ({e.Message})");
                    failures.Add(new CompareFailure(row.Id, row.Config, row.Seed, 0, e.Message));
                }
            }

            Write(grid, done, failures);
        }

        var results = Write(grid, done, failures);
        log.WriteLine($"wrote {Path.Combine(grid, CompareReport.JsonFile)}, {CompareReport.MarkdownFile}, {CompareReport.HtmlFile} ({done.Count}/{total} rows{(failures.Count > 0 ? $", {failures.Count} failed" : "")})");
        return results;
    }

    /// <summary>The finished row stored in RUNDIR/row.json, or null when the row has not finished.</summary>
    public static CompareRowResult? TryLoadRow(string rowDir)
    {
        var path = Path.Combine(rowDir, RowFile);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<CompareRowResult>(File.ReadAllText(path), EvalReport.JsonOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The argument list of the row's `fma-train train` call (without the trainer command itself).</summary>
    public IReadOnlyList<string> TrainArguments(CompareRow row, string dir, bool resume)
    {
        var args = new List<string> { "train" };
        args.AddRange(options.Recipe);
        args.AddRange(["--model", row.Model, "--head", row.Head, "--loss", row.TrainerLoss, "--seed", row.Seed.ToString(CultureInfo.InvariantCulture), "--out", dir]);
        if (row.BCnn)
        {
            args.Add("--bcnn");
        }

        if (resume)
        {
            args.Add("--resume");
        }

        return args;
    }

    private (int Exit, long? PeakRss, double Wall, string Tail) RunTrainer(CompareRow row, string dir, bool resume, string tag, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(options.TrainerCommand[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in options.TrainerCommand.Skip(1).Concat(TrainArguments(row, dir, resume)))
        {
            psi.ArgumentList.Add(a);
        }

        var tail = new Queue<string>();
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (tail)
            {
                log.WriteLine($"  {tag} | {line}");
                tail.Enqueue(line);
                if (tail.Count > 5)
                {
                    tail.Dequeue();
                }
            }
        }

        var sw = Stopwatch.StartNew();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => OnLine(e.Data);
        p.ErrorDataReceived += (_, e) => OnLine(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        long? peak = null;
        var status = $"/proc/{p.Id}/status";
        var cancelled = false;
        // VmHWM is the process's own high-water mark, so sampling it often loses at most the last interval's growth.
        while (!p.WaitForExit(100))
        {
            peak = Math.Max(peak ?? 0, ReadVmHwm(status) ?? 0);
            if (ct.IsCancellationRequested && !cancelled)
            {
                // A terminal's Ctrl-C reaches the child too; give it time to checkpoint before giving up on it.
                cancelled = true;
                if (!p.WaitForExit(60_000))
                {
                    p.Kill(entireProcessTree: true);
                }
            }
        }

        p.WaitForExit();
        string last;
        lock (tail)
        {
            last = string.Join(" / ", tail);
        }

        return (p.ExitCode, peak is > 0 ? peak : null, sw.Elapsed.TotalSeconds, last);
    }

    private static long? ReadVmHwm(string statusPath)
    {
        try
        {
            foreach (var line in File.ReadLines(statusPath))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var kb = line["VmHWM:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // The process just exited, or /proc is not there (not Linux): no sample.
        }

        return null;
    }

    /// <summary>Collects a finished run's numbers: report.json (ONNX Runtime evaluation of the calibrated model on
    /// val), history.json (time), model.onnx (size) and the checkpoint (parameter counts).</summary>
    private static CompareRowResult Measure(CompareRow row, string dir, long? peak, double wall)
    {
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "report.json")))!.AsObject();
        var levels = report["levels"]!.AsArray().Select(l => new CompareLevel(
            (string)l!["name"]!, D(l["top1"]), D(l["top2"]), D(l["top3"]), D(l["top4"]), D(l["top5"]), D(l["consistent_accuracy"]))).ToList();
        var coarse = report["coarse"]!.AsObject();
        var history = TrainingHistory.Load(Path.Combine(dir, Trainer.HistoryFile));
        var state = Checkpoint.ReadState(Trainer.LastDir(dir));
        var (model, _, _) = Checkpoint.LoadModel(Trainer.LastDir(dir));
        long parameters, backbone;
        using (model)
        {
            parameters = model.ParameterCount();
            backbone = model.ParameterCount(backboneOnly: true);
        }

        return new CompareRowResult
        {
            Id = row.Id,
            Model = row.Model,
            Head = row.Head,
            Loss = row.Loss,
            Seed = row.Seed,
            Config = row.Config,
            ValImages = (int)report["images"]!,
            Levels = levels,
            PathAccuracy = D(report["path_accuracy"]),
            PathAccuracyArgmax = D(report["path_accuracy_argmax"]),
            Consistency = D(report["consistency"]),
            MistakeSeverity = D(report["mistake_severity"]),
            HierarchicalF1 = D(report["hierarchical_f1"]),
            CoverageByLevel = coarse["coverage_by_level"]!.AsArray().Select(D).ToList(),
            CoarsePrecision = D(coarse["precision"]),
            TargetPrecision = report["decoding"]?["target_precision"]?.GetValue<double?>(),
            Epochs = state.CompletedEpochs,
            TrainSeconds = history.Epochs.Sum(e => e.Seconds),
            WallSeconds = wall,
            ImagesPerSecond = history.Epochs.Count == 0 ? 0 : history.Epochs.Average(e => e.ImagesPerSec),
            ModelBytes = new FileInfo(Path.Combine(dir, "model.onnx")).Length,
            Parameters = parameters,
            BackboneParameters = backbone,
            PeakRssBytes = peak,
            FinishedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
    }

    private CompareResults Write(string grid, List<CompareRowResult> done, List<CompareFailure> failures)
    {
        var results = new CompareResults
        {
            CreatedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            Recipe = options.Recipe,
            RowCommand = "fma-train " + string.Join(' ', TrainArguments(new CompareRow("MODEL", "HEAD", "LOSS", 0), Path.Combine(grid, "ROW"), false)
                .Select(Quote)).Replace("--loss LOSS --seed 0", "--loss LOSS --seed SEED", StringComparison.Ordinal) + "   (bcnn rows: --loss ce --bcnn)",
            Environment = CompareReport.Environment(),
            RowsPlanned = options.Rows.Count,
            Rows = done,
            Configs = done.GroupBy(r => r.Config).Select(g => CompareConfigSummary.Of(g.ToList())).ToList(),
            Failures = failures,
        };
        CompareReport.WriteAll(grid, results);
        return results;
    }

    private static string Quote(string a) => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a;

    private static double D(JsonNode? n) => n is null ? double.NaN : n.GetValue<double>();

    private static string Pct(double v) => (v * 100).ToString("F1", CultureInfo.InvariantCulture) + " %";
}
