using System.Diagnostics;
using FmaEdge.Core.Contract;
using FmaEdge.Inference;
using Microsoft.ML.OnnxRuntime;

namespace FmaEdge.Cli.Bench;

/// <summary>The ceiling: a bare ONNX Runtime loop on the model with the daemon's session settings (the chosen provider, full
/// graph optimisation, sequential execution, the same intra-op threads), fed one pre-made input tensor, so no decoding,
/// preprocessing, batching logic or output handling is counted. Stateless.</summary>
public static class CeilingBenchmark
{
    /// <summary>Runs batches of <paramref name="batch"/> for about <paramref name="seconds"/> after two warm-up runs
    /// (at least three timed runs).</summary>
    public static CeilingResult Run(ValidatedModel model, string provider, int threads, int batch, double seconds, CancellationToken ct)
    {
        var input = model.Manifest.Input;
        var len = 3 * input.Height * input.Width;
        using var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (threads > 0)
        {
            so.IntraOpNumThreads = threads;
        }

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
        return new CeilingResult(batch, times.Count, elapsed, times.Count * batch / elapsed, StageStats.Of(times), cpu.Cores,
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
