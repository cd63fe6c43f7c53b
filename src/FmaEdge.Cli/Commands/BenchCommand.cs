using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FmaEdge.Cli.Bench;
using Spectre.Console;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge bench</c>: the ceilings (bare ONNX Runtime: the best configuration found, and the daemon's own
/// settings), the daemon's folder -> MQTT throughput as a ratio to both with per-stage latency, preprocessing cost, and the hot-swap stall; a table, optional JSON, and the exact command.
/// <c>fma-edge bench stage</c> writes distinct-content copies of real images (for soak runs). Exit 0 on success, 1 when
/// the run failed, 2 for bad options.</summary>
public static class BenchCommand
{
    /// <summary>The JSON report's serialisation: snake_case, indented.</summary>
    public static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public static Command Create(CliConsole console)
    {
        var model = new Option<string?>("--model", "-m") { Description = "Model file (default: the shipped models/defects-convnext_femto-128.onnx)" };
        var images = new Option<string?>("--images") { Description = "Folder of real PNG/JPEG images, any depth (default: the defect set's val split, else tools/demo/images)" };
        var provider = new Option<string>("--provider") { Description = "Execution provider for ceiling and daemon: cpu, cuda or tensorrt", DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads for the daemon and its same-settings ceiling (0 = the daemon's default: one per batch and one batch at once per core on the CPU provider)" };
        var large = new Option<string?>("--large") { Description = "png or jpeg: run the pipeline on 2448x2048 (5-megapixel) images of that format made from the real images" };
        var searchSeconds = new Option<double>("--search-seconds") { Description = "Seconds per configuration of the best-ceiling search (threads 1..cores, each alone and as cores/threads runs at once, x batch 1, 2, 4, .., max batch)", DefaultValueFactory = _ => 3 };
        var set = new Option<string[]>("--set") { Description = "Daemon configuration override KEY=VALUE (KEY under FmaEdge, e.g. Inference:OtherThreadsNice=0); repeatable", AllowMultipleArgumentsPerToken = false };
        var batch = new Option<int>("--max-batch") { Description = "The daemon's Inference:MaxBatch; the ceiling runs at this batch", DefaultValueFactory = _ => 8 };
        var ceiling = new Option<double>("--ceiling-seconds") { Description = "Length of the bare ONNX Runtime loop", DefaultValueFactory = _ => 10 };
        var count = new Option<int>("--count") { Description = "Images pushed through the pipeline for throughput", DefaultValueFactory = _ => 300 };
        var repeats = new Option<int>("--preprocess-repeats") { Description = "Decode+preprocess runs per generated image (0 = skip)", DefaultValueFactory = _ => 30 };
        var swapSeconds = new Option<double>("--swap-seconds") { Description = "Length of the hot-swap stream (0 = skip)", DefaultValueFactory = _ => 20 };
        var swapLoad = new Option<double>("--swap-load") { Description = "Hot-swap stream rate as a fraction of the measured throughput", DefaultValueFactory = _ => 0.5 };
        var broker = new Option<string?>("--broker") { Description = "An external MQTT broker host:port (default: the daemon's embedded broker)" };
        var workDir = new Option<string?>("--work-dir") { Description = "Keep the run's folders here (default: a temporary folder, removed)" };
        var json = new Option<string?>("--json") { Description = "Also write the report as JSON to this file" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for every result before failing", DefaultValueFactory = _ => 600 };
        var cmd = new Command("bench", "Benchmark the ceiling (bare ONNX Runtime) against the daemon's folder -> MQTT pipeline, preprocessing and hot-swap")
        {
            model, images, large, provider, threads, searchSeconds, set, batch, ceiling, count, repeats, swapSeconds, swapLoad, broker, workDir, json, timeout,
        };
        cmd.SetAction((parse, ct) =>
        {
            // The same malloc settings as `fma-edge run`, so the pipeline is measured as it runs in production.
            _ = FmaEdge.Daemon.Hosting.NativeMemory.Apply();
            FmaEdge.Daemon.Pipeline.InferenceThreads.Initialize(); // the ceilings and the daemon's inference start from it
            var o = new BenchOptions
            {
                Model = parse.GetValue(model) ?? BenchOptions.DefaultModel(),
                Images = parse.GetValue(images) ?? BenchOptions.DefaultImages(),
                Provider = parse.GetValue(provider)!.ToLowerInvariant(),
                Threads = parse.GetValue(threads),
                SearchSeconds = parse.GetValue(searchSeconds),
                Large = parse.GetValue(large),
                MaxBatch = parse.GetValue(batch),
                CeilingSeconds = parse.GetValue(ceiling),
                Count = parse.GetValue(count),
                PreprocessRepeats = parse.GetValue(repeats),
                SwapSeconds = parse.GetValue(swapSeconds),
                SwapLoad = parse.GetValue(swapLoad),
                Broker = parse.GetValue(broker),
                WorkDir = parse.GetValue(workDir),
                Json = parse.GetValue(json),
                TimeoutSeconds = parse.GetValue(timeout),
            };
            foreach (var kv in parse.GetValue(set) ?? [])
            {
                var eq = kv.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    console.Error.WriteLine($"fma-edge bench: --set '{kv}' is not KEY=VALUE");
                    return Task.FromResult(2);
                }

                o.Overrides[kv[..eq].Trim()] = kv[(eq + 1)..].Trim();
            }

            return RunAsync(console, o, CommandLine(parse), ct);
        });
        cmd.Subcommands.Add(CreateStage(console));
        return cmd;
    }

    /// <summary>Runs the benchmark and prints (and writes) the report.</summary>
    public static async Task<int> RunAsync(CliConsole console, BenchOptions o, string command, CancellationToken ct)
    {
        var errors = o.Validate();
        if (errors.Count > 0)
        {
            foreach (var e in errors)
            {
                await console.Error.WriteLineAsync("fma-edge bench: " + e);
            }

            return 2;
        }

        if (console.Ansi.Profile.Width < 160)
        {
            console.Ansi.Profile.Width = 160; // a piped report (docs, CI logs) keeps whole rows
        }

        console.Ansi.MarkupLine("[bold]command:[/] " + Markup.Escape(command));
        BenchReport report;
        try
        {
            report = await BenchRunner.RunAsync(o, command, line => console.Error.WriteLine("bench: " + line), ct);
        }
        catch (Exception e) when (e is ArgumentException or TimeoutException or IOException or InvalidOperationException or InvalidDataException)
        {
            await console.Error.WriteLineAsync("fma-edge bench: " + e.Message);
            return 1;
        }

        Render(console.Ansi, report);
        if (o.Json is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(o.Json));
            if (dir is not null)
            {
                Directory.CreateDirectory(dir);
            }

            await File.WriteAllTextAsync(o.Json, JsonSerializer.Serialize(report, Json), ct);
            console.Ansi.MarkupLine("JSON report: " + Markup.Escape(Path.GetFullPath(o.Json)));
        }

        return 0;
    }

    /// <summary>The command line as typed, for the report ("fma-edge" plus every token, quoted where needed).</summary>
    private static string CommandLine(ParseResult parse) =>
        "fma-edge " + string.Join(' ', parse.Tokens.Select(t => t.Value.Any(char.IsWhiteSpace) || t.Value.Length == 0 ? $"'{t.Value}'" : t.Value));

    private static Command CreateStage(CliConsole console)
    {
        var from = new Option<string>("--from") { Description = "Folder of real PNG/JPEG images (any depth)", Required = true };
        var to = new Option<string>("--to") { Description = "Folder to write the copies into", Required = true };
        var count = new Option<int>("--count") { Description = "How many copies", Required = true };
        var prefix = new Option<string>("--prefix") { Description = "Name prefix of the copies", DefaultValueFactory = _ => "img" };
        var cmd = new Command("stage", "Write COUNT copies of real images with distinct bytes (a PNG text chunk / JPEG comment) and generated names")
        {
            from, to, count, prefix,
        };
        cmd.SetAction(parse =>
        {
            var sources = BenchImages.Find(parse.GetValue(from)!);
            var n = parse.GetValue(count);
            if (sources.Count == 0 || n < 1)
            {
                console.Error.WriteLine("fma-edge bench stage: need at least one image and --count >= 1");
                return 2;
            }

            var written = BenchImages.Stage(sources, parse.GetValue(to)!, n, parse.GetValue(prefix)!);
            console.Out.WriteLine($"{written.Count} images from {sources.Count} originals written to {Path.GetFullPath(parse.GetValue(to)!)}");
            return 0;
        });
        return cmd;
    }

    /// <summary>The report as tables.</summary>
    public static void Render(IAnsiConsole ansi, BenchReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        string F(double v, string f = "F1") => v.ToString(f, inv);
        ansi.MarkupLine(Markup.Escape($"model {r.Model.Id} ({r.Model.Architecture}, {r.Model.Width}x{r.Model.Height}, sha256 {r.Model.Sha256[..12]}); " +
            $"{r.Machine.Cores} cores {r.Machine.Cpu}; ONNX Runtime {r.Machine.OnnxRuntime}; load {r.Machine.LoadBefore} -> {r.Machine.LoadAfter}"));
        ansi.MarkupLine(Markup.Escape($"provider {r.Settings.Provider}, intra-op threads {r.Settings.IntraOpThreads}, " +
            $"max batch {r.Settings.MaxBatch}, broker {r.Settings.Broker}" + (r.Settings.Large is null ? "" : $"; pipeline images 2448x2048 {r.Settings.Large}") +
            (r.Settings.Overrides.Count == 0 ? "" : "; overrides " + string.Join(", ", r.Settings.Overrides.Select(kv => $"{kv.Key}={kv.Value}")))));

        var p = r.Pipeline;
        var batches = r.CeilingSearch.Select(c => c.Batch).Distinct().Order().ToList();
        var grid = new Table().Title("best-ceiling search: bare ONNX Runtime images/s").AddColumn("threads");
        foreach (var b in batches)
        {
            grid.AddColumn("batch " + b.ToString(inv));
        }

        foreach (var (t, n) in r.CeilingSearch.Select(c => (c.Threads, c.Concurrent)).Distinct())
        {
            var label = n > 1 ? $"{n} runs at once x {t}" : t.ToString(inv);
            grid.AddRow([label, .. batches.Select(b => r.CeilingSearch.FirstOrDefault(c => c.Threads == t && c.Concurrent == n && c.Batch == b) is { } c
                ? (c == r.BestCeiling ? $"[bold]{F(c.ImagesPerSecond)}[/]" : F(c.ImagesPerSecond)) : "-")]);
        }

        ansi.Write(grid);

        var top = new Table().Title("throughput").AddColumns("what", "images/s", "detail");
        top.AddRow($"best ceiling: {BenchRunner.Shape(r.BestCeiling)}", F(r.BestCeiling.ImagesPerSecond),
            $"{r.BestCeiling.Runs} runs, {F(r.BestCeiling.BatchMs.P50)} ms per batch (p50); {F(r.BestCeiling.Cores, "F2")} cores busy, {F(r.BestCeiling.CpuMsPerImage)} CPU ms/image");
        top.AddRow("best ceiling right before the timed run", F(r.BestCeilingBefore.ImagesPerSecond),
            $"{r.BestCeilingBefore.Runs} runs, {F(r.BestCeilingBefore.BatchMs.P50)} ms per batch (p50); {F(r.BestCeilingBefore.Cores, "F2")} cores busy");
        top.AddRow("best ceiling right after the timed run", F(r.BestCeilingAfter.ImagesPerSecond),
            $"{r.BestCeilingAfter.Runs} runs, {F(r.BestCeilingAfter.BatchMs.P50)} ms per batch (p50); {F(r.BestCeilingAfter.Cores, "F2")} cores busy");
        top.AddRow($"same-settings ceiling: {BenchRunner.Shape(r.Ceiling)}", F(r.Ceiling.ImagesPerSecond),
            $"{r.Ceiling.Runs} runs, {F(r.Ceiling.BatchMs.P50)} ms per batch (p50); {F(r.Ceiling.Cores, "F2")} cores busy, {F(r.Ceiling.CpuMsPerImage)} CPU ms/image");
        top.AddRow("same-settings ceiling right before the timed run", F(r.CeilingBefore.ImagesPerSecond),
            $"{r.CeilingBefore.Runs} runs, {F(r.CeilingBefore.BatchMs.P50)} ms per batch (p50); {F(r.CeilingBefore.Cores, "F2")} cores busy, {F(r.CeilingBefore.CpuMsPerImage)} CPU ms/image");
        top.AddRow("same-settings ceiling right after the timed run", F(r.CeilingAfter.ImagesPerSecond),
            $"{r.CeilingAfter.Runs} runs, {F(r.CeilingAfter.BatchMs.P50)} ms per batch (p50); {F(r.CeilingAfter.Cores, "F2")} cores busy, {F(r.CeilingAfter.CpuMsPerImage)} CPU ms/image");
        top.AddRow("bare ONNX Runtime, batch 1", F(r.CeilingBatch1.ImagesPerSecond),
            $"{r.CeilingBatch1.Runs} runs, {F(r.CeilingBatch1.BatchMs.P50)} ms (p50); {F(r.CeilingBatch1.Cores, "F2")} cores busy, {F(r.CeilingBatch1.CpuMsPerImage)} CPU ms/image");
        top.AddRow("pipeline: folder -> MQTT received", F(p.ImagesPerSecond),
            $"{p.Received}/{p.Images} images in {F(p.Seconds, "F2")} s, mean batch {F(p.MeanBatch, "F2")}; {F(p.Cpu.Cores, "F2")} cores busy, {F(p.CpuMsPerImage)} CPU ms/image");
        top.AddRow("[bold]ratio to the best ceiling[/]", $"[bold]{F(p.RatioToBest, "F3")}[/]", "over the mean of the best configuration right before and right after; target >= 0.9");
        top.AddRow("ratio to the same-settings ceiling", F(p.Ratio, "F3"), "over the mean of the same-settings ceiling right before and right after");
        ansi.Write(top);
        ansi.MarkupLine(Markup.Escape($"warm-up: {p.WarmUp.Images} images in {p.WarmUp.Rounds} round(s), {F(p.WarmUp.Seconds, "F1")} s, "
            + (p.WarmUp.JitSettled ? "the last round compiled under 25 ms" : "the JIT was still compiling after the last round")
            + $"; JIT during the timed run {F(p.WarmUp.JitMsDuringRun, "F0")} ms"));
        ansi.MarkupLine(Markup.Escape("pipeline CPU by thread: " + string.Join(", ", p.Cpu.Threads.Select(t => $"{t.Name} x{t.Threads} {F(t.CpuSeconds, "F2")} s"))));

        var stages = new Table().Title("per-stage latency (ms)").AddColumns("stage", "backlog p50", "backlog p99", "steady p50", "steady p99");
        foreach (var (name, s) in p.Backlog)
        {
            var st = p.Steady?.GetValueOrDefault(name);
            stages.AddRow(name, F(s.P50), F(s.P99), st is null ? "-" : F(st.P50), st is null ? "-" : F(st.P99));
        }

        ansi.Write(stages);

        if (r.Preprocess.Count > 0)
        {
            var pre = new Table().Title("decode + preprocess per image (one thread, ms)").AddColumns("image", "bytes", "decode p50", "preprocess p50", "total p50", "total p99");
            foreach (var x in r.Preprocess)
            {
                pre.AddRow($"{x.Name} {x.Width}x{x.Height} {x.Format}", x.Bytes.ToString("N0", inv), F(x.DecodeMs.P50, "F2"), F(x.PreprocessMs.P50, "F2"),
                    F(x.TotalMs.P50, "F2"), F(x.TotalMs.P99, "F2"));
            }

            ansi.Write(pre);
        }

        if (r.Swap is { } s2)
        {
            var sw = new Table().Title("hot-swap under a steady stream").AddColumns("what", "value");
            sw.AddRow("stream", $"{s2.Images} images at {F(s2.StreamRate)} /s; new model dropped at {F(s2.SwapAfterSeconds)} s");
            sw.AddRow("drop -> first result of the new model", s2.FirstNewModelSeconds < 0 ? "[red]never[/]" : F(s2.FirstNewModelSeconds, "F2") + " s");
            sw.AddRow("gap between results before (p50 / max)", $"{F(s2.BaselineGapMs.P50)} / {F(s2.BaselineGapMs.Max)} ms");
            sw.AddRow("[bold]stall: longest gap around the swap[/]", $"[bold]{F(s2.StallMs)} ms[/]");
            sw.AddRow("images affected (latency > pre-swap p99)", $"{s2.Affected} (worst {F(s2.AffectedMaxLatencyMs)} ms vs p99 {F(s2.BaselineP99LatencyMs)} ms)");
            sw.AddRow("results old / new model; lost", $"{s2.OldModelResults} / {s2.NewModelResults}; {s2.Lost}");
            ansi.Write(sw);
        }
    }
}
