using System.Diagnostics;
using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Inference;
using Microsoft.ML.OnnxRuntime;

namespace FmaEdge.Cli.Bench;

/// <summary>The ceiling: a bare ONNX Runtime loop on the model with the daemon's session settings (the chosen provider, full
/// graph optimisation, sequential execution, ONNX Runtime's default spinning), fed one pre-made input tensor, so no
/// decoding, preprocessing, batching logic or output handling is counted. Runs on a normal-priority thread
/// (<see cref="InferenceThreads"/>), as the daemon's inference does. Stateless.</summary>
public static class CeilingBenchmark
{
    /// <summary>Runs batches of <paramref name="batch"/> on <paramref name="provider"/> with <paramref name="threads"/>
    /// intra-op threads (>= 1) for about <paramref name="seconds"/> after two warm-up runs (at least three timed runs),
    /// <paramref name="concurrent"/> runs at once on the one session (each on its own normal-priority thread, as the
    /// daemon's inference workers do).</summary>
    public static Task<CeilingResult> RunAsync(ValidatedModel model, string provider, int threads, int batch, double seconds, CancellationToken ct,
        int concurrent = 1) =>
        InferenceThreads.RunAsync("ceiling", () => Run(model, provider, threads, batch, seconds, concurrent, ct));

    /// <summary>Every thread count from 1 to the cores this process may use, each at batch 1, 2, 4, ... up to
    /// <paramref name="maxBatch"/> (and <paramref name="maxBatch"/> itself), <paramref name="seconds"/> each; a thread
    /// count that leaves cores over is also run with cores / threads runs at once (what the daemon does by default).</summary>
    public static async Task<IReadOnlyList<CeilingResult>> SearchAsync(ValidatedModel model, string provider, int maxBatch, double seconds,
        Action<string>? progress, CancellationToken ct)
    {
        var results = new List<CeilingResult>();
        foreach (var (threads, concurrent) in SearchShapes(Environment.ProcessorCount))
        {
            foreach (var batch in SearchBatches(maxBatch))
            {
                progress?.Invoke($"best-ceiling search: {(concurrent > 1 ? $"{concurrent} runs at once x " : "")}{threads} thread(s), batch {batch}");
                results.Add(await RunAsync(model, provider, threads, batch, seconds, ct, concurrent));
            }
        }

        return results;
    }

    /// <summary>(intra-op threads, runs at once) searched on <paramref name="cores"/> cores: every thread count alone,
    /// and with cores / threads runs at once where that is more than one.</summary>
    public static IReadOnlyList<(int Threads, int Concurrent)> SearchShapes(int cores)
    {
        var list = new List<(int, int)>();
        for (var t = 1; t <= cores; t++)
        {
            list.Add((t, 1));
            if (cores / t > 1)
            {
                list.Add((t, cores / t));
            }
        }

        return list;
    }

    /// <summary>1, 2, 4, ... below <paramref name="maxBatch"/>, then <paramref name="maxBatch"/>.</summary>
    public static IReadOnlyList<int> SearchBatches(int maxBatch)
    {
        var list = new List<int>();
        for (var b = 1; b < maxBatch; b *= 2)
        {
            list.Add(b);
        }

        list.Add(maxBatch);
        return list;
    }

    private static CeilingResult Run(ValidatedModel model, string provider, int threads, int batch, double seconds, int concurrent, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrent, 1);
        var input = model.Manifest.Input;
        var len = 3 * input.Height * input.Width;
        using var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        so.IntraOpNumThreads = threads;

        using var session = OpenSession(model, so, provider, batch);
        var rng = new Random(0);
        var data = new float[batch * len];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (float)(rng.NextDouble() * 4 - 2); // roughly the range of a normalised image
        }

        using var tensor = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, data.AsMemory(), [batch, 3, input.Height, input.Width]);
        var outputs = model.Manifest.Outputs.Select(o => o.Name).ToArray();
        using var runOptions = new RunOptions();
        string[] inputs = [input.Name];
        for (var w = 0; w < 2; w++)
        {
            using var _ = session.Run(runOptions, inputs, [tensor], outputs);
        }

        List<double> Loop(Stopwatch total)
        {
            // Each concurrent run has its own RunOptions (kept alive for the whole loop) and reads the shared input.
            using var own = new RunOptions();
            var times = new List<double>();
            while (times.Count < 3 || total.Elapsed.TotalSeconds < seconds)
            {
                ct.ThrowIfCancellationRequested();
                var t = Stopwatch.GetTimestamp();
                using (session.Run(own, inputs, [tensor], outputs))
                {
                }

                times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }

            return times;
        }

        // The whole process's CPU time: it keeps the time of the concurrent runs' threads after they end (a per-thread
        // snapshot would miss them). The process is otherwise idle while a ceiling runs.
        using var self = Process.GetCurrentProcess();
        var cpu0 = self.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        var others = Enumerable.Range(1, concurrent - 1).Select(i => InferenceThreads.RunAsync($"ceiling-{i}", () => Loop(wall))).ToList();
        var all = Loop(wall);
        foreach (var other in others)
        {
            all.AddRange(other.GetAwaiter().GetResult());
        }

        var wallSeconds = wall.Elapsed.TotalSeconds;
        self.Refresh();
        var cpuSeconds = (self.TotalProcessorTime - cpu0).TotalSeconds;
        // One run at a time: the sum of the runs (the loop's own overhead left out). Several: the wall time they shared.
        var elapsed = concurrent == 1 ? all.Sum() / 1000.0 : wallSeconds;
        return new CeilingResult(threads, batch, all.Count, elapsed, all.Count * batch / elapsed, StageStats.Of(all), cpuSeconds / wallSeconds,
            cpuSeconds * 1000 / (all.Count * batch), concurrent);
    }

    /// <summary>A session on <paramref name="provider"/> with the daemon's provider options (profile up to
    /// <paramref name="batch"/>, no engine cache: a bench measures, it keeps nothing); a provider that cannot load
    /// stops the bench with ONNX Runtime's reason.</summary>
    private static InferenceSession OpenSession(ValidatedModel model, SessionOptions so, string provider, int batch)
    {
        try
        {
            var options = new InferenceOptions { TensorRt = new TensorRtOptions { MaxBatch = Math.Max(batch, 1) } };
            ProviderSettings.Append(so, provider, ProviderSettings.For(provider, options, model));
            return new InferenceSession(model.Path, so);
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException($"execution provider {provider} cannot be loaded: {e.Message}", e);
        }
    }
}
