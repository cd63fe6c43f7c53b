using System.Diagnostics;
using System.Runtime.InteropServices;
using FmaEdge.Core.Contract;
using Microsoft.ML.OnnxRuntime;

namespace FmaEdge.Cli.Bench;

/// <summary>Runs every part of <c>fma-edge bench</c> in order (ceilings on the idle machine first: the daemon's settings
/// and the search for the best bare configuration; then preprocessing,
/// then the daemon: backlog throughput and the hot-swap stream) and returns the report. Not thread-safe; one run at a time.</summary>
public static class BenchRunner
{
    /// <summary>Runs the benchmark. <paramref name="command"/> is recorded verbatim; <paramref name="progress"/> hears
    /// one line per step. Throws <see cref="ArgumentException"/> for invalid options or an invalid model.</summary>
    public static async Task<BenchReport> RunAsync(BenchOptions options, string command, Action<string>? progress, CancellationToken ct)
    {
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors));
        }

        var contract = ModelContract.Validate(options.Model);
        if (!contract.IsValid)
        {
            throw new ArgumentException($"model {options.Model} is not valid: {string.Join("; ", contract.Violations)}");
        }

        var model = contract.Model!;
        var images = BenchImages.Find(options.Images);
        if (images.Count == 0)
        {
            throw new ArgumentException($"no PNG or JPEG images under {options.Images}");
        }

        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var loadBefore = LoadAverage();
        var m = model.Manifest;
        var threads = options.EffectiveThreads;
        var concurrent = options.EffectiveConcurrent;
        progress?.Invoke($"ceiling: bare ONNX Runtime loop, {(concurrent > 1 ? $"{concurrent} runs at once x " : "")}{threads} thread(s), batch {options.MaxBatch}, {options.CeilingSeconds:0.#} s");
        var ceiling = await CeilingBenchmark.RunAsync(model, options.Provider, threads, options.MaxBatch, options.CeilingSeconds, ct, concurrent);
        progress?.Invoke("ceiling: batch 1");
        var ceiling1 = await CeilingBenchmark.RunAsync(model, options.Provider, threads, 1, Math.Max(options.CeilingSeconds / 2, 0.1), ct, concurrent);
        var search = await CeilingBenchmark.SearchAsync(model, options.Provider, options.MaxBatch, options.SearchSeconds, progress, ct);
        var best = search.MaxBy(c => c.ImagesPerSecond)!;
        IReadOnlyList<PreprocessResult> pre = [];
        if (options.PreprocessRepeats > 0)
        {
            progress?.Invoke($"preprocessing: 200x200 and 2448x2048, PNG and JPEG, {options.PreprocessRepeats} runs each");
            pre = PreprocessBenchmark.Run(model, images[0], options.PreprocessRepeats, ct);
        }

        var temp = options.WorkDir is null;
        var root = temp
            ? Path.Combine(Path.GetTempPath(), $"fmaedge-bench-{Guid.NewGuid():N}")
            : Path.Combine(Path.GetFullPath(options.WorkDir!), $"bench-{started:yyyyMMdd'T'HHmmss'Z'}-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        var pipelineImages = images;
        if (options.Large is { } large)
        {
            var (_, w, h) = PreprocessBenchmark.Sizes[1];
            progress?.Invoke($"large images: {LargeImageCount} real images resized to {w}x{h}, {large}");
            pipelineImages = BenchImages.MakeLarge(images, Path.Combine(root, "large"), large, LargeImageCount, w, h);
        }

        PipelineResult pipeline;
        CeilingResult ceilingBefore;
        CeilingResult ceilingAfter;
        CeilingResult bestBefore;
        CeilingResult bestAfter;
        SwapResult? swap = null;
        string broker;
        try
        {
            await using var daemon = new PipelineBenchmark(options, model, root);
            progress?.Invoke("pipeline: starting the daemon (model loaded and warmed, folder watched)");
            await daemon.StartAsync(ct);
            broker = daemon.BrokerDescription;
            progress?.Invoke($"pipeline: warm-up rounds of {daemon.WarmUpRoundImages} images until the JIT is quiet");
            var warmUp = await daemon.WarmUpAsync(pipelineImages, ct);
            // The speed of a shared or virtual machine drifts by tens of percent within minutes, so the ratios use both
            // ceilings measured right before and right after the timed run (the daemon warm and idle), not the search's
            // figures from a minute or more earlier; the search only picks the best configuration.
            progress?.Invoke($"best ceiling again ({Shape(best)}) and the same-settings ceiling, right before the timed run");
            bestBefore = await CeilingBenchmark.RunAsync(model, options.Provider, best.Threads, best.Batch, options.CeilingSeconds, ct, best.Concurrent);
            ceilingBefore = await CeilingBenchmark.RunAsync(model, options.Provider, threads, options.MaxBatch, options.CeilingSeconds, ct, concurrent);
            progress?.Invoke($"pipeline: {options.Count} files renamed into the watched folder at once, results from {broker}");
            pipeline = await daemon.RunBacklogAsync(pipelineImages, warmUp, ct);
            progress?.Invoke("both ceilings again, right after the timed run");
            ceilingAfter = await CeilingBenchmark.RunAsync(model, options.Provider, threads, options.MaxBatch, options.CeilingSeconds, ct, concurrent);
            bestAfter = await CeilingBenchmark.RunAsync(model, options.Provider, best.Threads, best.Batch, options.CeilingSeconds, ct, best.Concurrent);
            pipeline = pipeline with
            {
                Ratio = pipeline.ImagesPerSecond / ((ceilingBefore.ImagesPerSecond + ceilingAfter.ImagesPerSecond) / 2),
                RatioToBest = pipeline.ImagesPerSecond / ((bestBefore.ImagesPerSecond + bestAfter.ImagesPerSecond) / 2),
            };
            if (options.SwapSeconds > 0)
            {
                var rate = Math.Max(0.5, pipeline.ImagesPerSecond * options.SwapLoad);
                progress?.Invoke($"hot-swap: steady stream of {rate:0.#} images/s for {options.SwapSeconds:0.#} s, a new model dropped at 40 %");
                var (s, steady) = await daemon.RunSwapAsync(pipelineImages, rate, ct);
                swap = s;
                pipeline = pipeline with { Steady = steady };
            }
        }
        finally
        {
            if (temp)
            {
                try
                {
                    Directory.Delete(root, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }

        return new BenchReport
        {
            Command = command,
            StartedUtc = started,
            DurationSeconds = clock.Elapsed.TotalSeconds,
            Machine = new MachineInfo(Environment.ProcessorCount, CpuModel(), RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription,
                OrtEnv.Instance().GetVersionString(), loadBefore, LoadAverage()),
            Model = new BenchModelInfo(Path.GetFullPath(options.Model), m.Model.Id, m.Model.Architecture, model.Sha256, m.Input.Width, m.Input.Height),
            Settings = new BenchSettings(options.Provider, threads, options.MaxBatch, options.Count, broker, Path.GetFullPath(options.Images), options.Large,
                new SortedDictionary<string, string>(options.Overrides, StringComparer.OrdinalIgnoreCase)),
            Ceiling = ceiling,
            CeilingBefore = ceilingBefore,
            CeilingAfter = ceilingAfter,
            CeilingBatch1 = ceiling1,
            CeilingSearch = search,
            BestCeiling = best,
            BestCeilingBefore = bestBefore,
            BestCeilingAfter = bestAfter,
            Pipeline = pipeline,
            Preprocess = pre,
            Swap = swap,
        };
    }

    /// <summary>"2 runs at once x 1 thread(s), batch 8", or "2 thread(s), batch 8".</summary>
    public static string Shape(CeilingResult c) =>
        (c.Concurrent > 1 ? $"{c.Concurrent} runs at once x " : "") + $"{c.Threads} thread(s), batch {c.Batch}";

    /// <summary>Distinct real images made camera-sized for <c>--large</c> (copies of them are tagged, as always).</summary>
    private const int LargeImageCount = 32;

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static string CpuModel()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
        }
        catch (IOException)
        {
            return "";
        }
    }
}
