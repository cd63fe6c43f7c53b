using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Inference;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace FmaEdge.Daemon.Models;

/// <summary>Loads models with ONNX Runtime through <see cref="OnnxClassifier"/>, mapping the daemon's inference
/// settings (TensorRT caches under the state folder, keyed by model hash inside OnnxClassifier). Thread-safe.</summary>
public sealed class OnnxClassifierLoader(FmaEdgeOptions options, ILoggerFactory loggers) : IClassifierLoader
{
    private readonly ILogger _log = loggers.CreateLogger("FmaEdge.Inference");

    /// <summary>The inference options this loader passes to ONNX Runtime.</summary>
    public InferenceOptions InferenceOptions { get; } = Map(options);

    /// <summary>Loads a model. With <c>IntraOpThreads: 0</c> a session on the CPU provider gets one intra-op thread and
    /// the pipeline runs one batch per core at once (<see cref="ConcurrentBatchesFor"/>): measured on 2 cores
    /// (docs/performance.md), two one-thread runs beat one two-thread run by 40-50 % for atto@128 and by ~18 % for
    /// ConvNeXt-T@224, because ONNX Runtime's threads wait for each other inside every operator.</summary>
    public IClassifier Load(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var oneThread = InferenceOptions with { IntraOpThreads = 1 };
        var byDefault = options.Inference.IntraOpThreads == 0;
        var cpuOnly = InferenceOptions.Providers.All(p => p == ExecutionProviders.Cpu);
        var classifier = OnnxClassifier.Load(path, byDefault && cpuOnly ? oneThread : InferenceOptions, _log);
        if (!byDefault || classifier.ExecutionProvider != ExecutionProviders.Cpu)
        {
            return new OnnxClassifierAdapter(classifier, ConcurrentBatchesFor(classifier.ExecutionProvider, InferenceOptions.EffectiveIntraOpThreads), TimesBatches(classifier), _log);
        }

        if (!cpuOnly && InferenceOptions.EffectiveIntraOpThreads != 1)
        {
            // Fell back to the CPU from a GPU provider: threads are fixed when a session is made, so make it again.
            classifier.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            classifier = OnnxClassifier.Load(path, oneThread, _log);
        }

        var concurrent = ConcurrentBatchesFor(ExecutionProviders.Cpu, 1);
        Log.OneThreadPerBatch(_log, path, concurrent);
        return new OnnxClassifierAdapter(classifier, concurrent, TimesBatches(classifier), _log);
    }

    /// <summary><c>Inference:ConcurrentBatches</c>, or for 0: on the CPU provider the cores this process may use divided
    /// by the session's intra-op threads (every core busy, none oversubscribed: one-thread sessions on 2 cores run two
    /// batches at once, a two-thread one one); on TensorRT and CUDA one (more is unmeasured on a GPU).</summary>
    public int ConcurrentBatchesFor(string provider, int intraOpThreads)
    {
        if (options.Inference.ConcurrentBatches > 0)
        {
            return options.Inference.ConcurrentBatches;
        }

        return provider == ExecutionProviders.Cpu ? Math.Max(1, options.Inference.MostConcurrentBatches / Math.Max(1, intraOpThreads)) : 1;
    }

    /// <summary>Whether warm-up times batch sizes for this classifier: <c>Inference:TimeBatches</c>, on the CPU provider
    /// only (a TensorRT engine is built for its batch profile; GPU batch timing is unmeasured).</summary>
    private bool TimesBatches(OnnxClassifier classifier) =>
        options.Inference.TimeBatches && classifier.ExecutionProvider == ExecutionProviders.Cpu;

    /// <summary>Daemon settings to ONNX Runtime options.</summary>
    public static InferenceOptions Map(FmaEdgeOptions o)
    {
        var inf = o.Inference;
        string? cache = string.IsNullOrWhiteSpace(inf.TensorRt.CacheDir)
            ? Path.Combine(o.Paths.ResolvedStateDir, "trt-cache")
            : Path.GetFullPath(inf.TensorRt.CacheDir);
        try
        {
            Directory.CreateDirectory(cache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A one-shot CLI run as an ordinary user cannot write the service's state folder: run without engine caches.
            cache = null;
        }

        return new InferenceOptions
        {
            Providers = inf.ProviderList.Select(p => p.ToLowerInvariant()).ToList(),
            IntraOpThreads = inf.IntraOpThreads,
            InterOpThreads = inf.InterOpThreads,
            TensorRt = new TensorRtOptions
            {
                DeviceId = inf.CudaDevice,
                Fp16 = inf.TensorRt.Fp16,
                LayerNormFp32Fallback = inf.TensorRt.LayerNormFp32Fallback,
                MaxWorkspaceBytes = inf.TensorRt.WorkspaceMiB * 1024L * 1024L,
                CacheDir = cache,
                EngineCache = inf.TensorRt.EngineCache,
                TimingCache = inf.TensorRt.TimingCache,
                MaxBatch = inf.MaxBatch,
                OptBatch = inf.TensorRt.OptBatch,
                BuilderOptimizationLevel = inf.TensorRt.BuilderOptimizationLevel,
                DlaCore = inf.TensorRt.DlaCore,
            },
            Cuda = new CudaOptions { DeviceId = inf.CudaDevice, MemoryLimitBytes = inf.CudaMemoryLimitMiB * 1024L * 1024L },
        };
    }

    /// <summary>Presents an <see cref="OnnxClassifier"/> as the pipeline's <see cref="IClassifier"/>.</summary>
    private sealed class OnnxClassifierAdapter(OnnxClassifier inner, int concurrentBatches, bool timeBatches, ILogger log) : IClassifier
    {
        public int ConcurrentBatches => concurrentBatches;

        public int BatchLimit { get; private set; } = int.MaxValue;

        public ValidatedModel Model => inner.Model;

        public string ExecutionProvider => inner.ExecutionProvider;

        public IReadOnlyList<string> ProviderNotes { get; } =
            inner.ProviderAttempts.Where(a => !a.Succeeded).Select(a => $"{a.Provider}: {a.Reason}").ToList();

        public IReadOnlyList<ProviderAttempt> ProviderAttempts => inner.ProviderAttempts;

        public int TensorLength => inner.Preprocessor.TensorLength;

        public void Preprocess(Mat rgb, Span<float> destination) => inner.Preprocessor.Preprocess(rgb, destination);

        public IReadOnlyList<HierarchicalPrediction> Classify(float[] batch, int count) => inner.Classify(batch, count);

        public void WarmUp(int batchSize, int runs, CancellationToken ct)
        {
            inner.WarmUp(batchSize, runs);
            // Warm-up only runs the graph; decode one output too, so a model whose outputs cannot be decoded (NaN or
            // infinite scores, say) is refused here, beside the serving model, instead of failing every image once swapped in.
            var probe = new float[inner.Preprocessor.TensorLength];
            Array.Fill(probe, 0.5f);
            inner.Classify(probe, 1);
            if (timeBatches && batchSize > 1)
            {
                // One input for every run: ONNX Runtime only reads it.
                var input = new float[batchSize * inner.Preprocessor.TensorLength];
                Array.Fill(input, 0.5f);
                var timing = BatchSizeProbe.Measure(size => inner.Classify(input, size), batchSize, concurrentBatches, ct);
                BatchLimit = timing.Chosen;
                Log.BatchesTimed(log, inner.Model.Path, timing.Chosen, batchSize,
                    string.Join(", ", timing.MsPerImage.OrderBy(kv => kv.Key).Select(kv => FormattableString.Invariant($"{kv.Key}: {kv.Value:0.###}"))));
            }
        }

        public void Dispose() => inner.Dispose();
    }
}
