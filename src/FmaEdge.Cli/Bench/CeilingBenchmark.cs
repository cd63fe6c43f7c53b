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
    /// intra-op threads (>= 1) for about <paramref name="seconds"/> after two warm-up runs (at least three timed runs).</summary>
    public static Task<CeilingResult> RunAsync(ValidatedModel model, string provider, int threads, int batch, double seconds, CancellationToken ct) =>
        InferenceThreads.RunAsync("ceiling", () => Run(model, provider, threads, batch, seconds, ct));

    /// <summary>Every thread count from 1 to the cores this process may use, each at batch 1, 2, 4, ... up to
    /// <paramref name="maxBatch"/> (and <paramref name="maxBatch"/> itself), <paramref name="seconds"/> each.</summary>
    public static async Task<IReadOnlyList<CeilingResult>> SearchAsync(ValidatedModel model, string provider, int maxBatch, double seconds,
        Action<string>? progress, CancellationToken ct)
    {
        var results = new List<CeilingResult>();
        foreach (var threads in Enumerable.Range(1, Environment.ProcessorCount))
        {
            foreach (var batch in SearchBatches(maxBatch))
            {
                progress?.Invoke($"best-ceiling search: {threads} thread(s), batch {batch}");
                results.Add(await RunAsync(model, provider, threads, batch, seconds, ct));
            }
        }

        return results;
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

    private static CeilingResult Run(ValidatedModel model, string provider, int threads, int batch, double seconds, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
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

        var times = new List<double>();
        var cpu0 = ThreadCpu.Take();
        var total = Stopwatch.StartNew();
        while (times.Count < 3 || total.Elapsed.TotalSeconds < seconds)
        {
            ct.ThrowIfCancellationRequested();
            var t = Stopwatch.GetTimestamp();
            using (session.Run(runOptions, inputs, [tensor], outputs))
            {
            }

            times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }

        var cpu = ThreadCpu.Take().Since(cpu0);
        var elapsed = times.Sum() / 1000.0;
        return new CeilingResult(threads, batch, times.Count, elapsed, times.Count * batch / elapsed, StageStats.Of(times), cpu.Cores,
            cpu.CpuSeconds * 1000 / (times.Count * batch));
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
