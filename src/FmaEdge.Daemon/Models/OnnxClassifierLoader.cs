using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Inference;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace FmaEdge.Daemon.Models;

/// <summary>Loads models with ONNX Runtime through <see cref="OnnxClassifier"/>, mapping the daemon's inference
/// settings (TensorRT caches under the state folder, keyed by model hash inside OnnxClassifier). Thread-safe.
/// <paramref name="cheapModelCoreMs"/> is <see cref="CheapModelCoreMs"/> except in tests.</summary>
public sealed class OnnxClassifierLoader(FmaEdgeOptions options, ILoggerFactory loggers, double cheapModelCoreMs = OnnxClassifierLoader.CheapModelCoreMs)
    : IClassifierLoader
{
    /// <summary>Below this CPU cost per image (core-milliseconds at every core), a model is cheaper than decoding and
    /// preparing its images: with <c>IntraOpThreads: 0</c> it gets one intra-op thread and the decode workers keep the
    /// other cores. Measured (docs/performance.md, issue 15): atto@112 costs 3.4 core-ms and runs 391 images/s with one
    /// thread vs 302 with two; ConvNeXt-T@224 costs ~60 and runs 24.1 with two vs 15.8 with one. The load-time timing
    /// is one cold batch on two threads, which reads high: 5.6 for atto@112 and above 8 (the limit until 2026-12-04)
    /// for the shipped atto@128, so the limit sits in the middle of the gap between the two kinds of model.</summary>
    public const double CheapModelCoreMs = 16;

    private readonly ILogger _log = loggers.CreateLogger("FmaEdge.Inference");

    /// <summary>The inference options this loader passes to ONNX Runtime.</summary>
    public InferenceOptions InferenceOptions { get; } = Map(options);

    public IClassifier Load(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var classifier = OnnxClassifier.Load(path, InferenceOptions, _log);
        var threads = InferenceOptions.EffectiveIntraOpThreads;
        if (options.Inference.IntraOpThreads != 0 || threads < 2 || classifier.ExecutionProvider != ExecutionProviders.Cpu)
        {
            return new OnnxClassifierAdapter(classifier);
        }

        // Threads are fixed when a session is made: time one full batch on every core, and remake the session with one
        // thread when the model is cheap (what decoding an image costs), so inference does not take the decoders' cores.
        var batch = Math.Max(1, options.Inference.MaxBatch);
        classifier.WarmUp(batch, 1);
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        classifier.WarmUp(batch, 2);
        var coreMs = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds * threads / (2.0 * batch);
        if (coreMs >= cheapModelCoreMs)
        {
            return new OnnxClassifierAdapter(classifier);
        }

        Log.OneInferenceThread(_log, path, coreMs, threads, cheapModelCoreMs);
        classifier.Dispose();
        cancellationToken.ThrowIfCancellationRequested();
        return new OnnxClassifierAdapter(OnnxClassifier.Load(path, InferenceOptions with { IntraOpThreads = 1 }, _log));
    }

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
    private sealed class OnnxClassifierAdapter(OnnxClassifier inner) : IClassifier
    {
        public ValidatedModel Model => inner.Model;

        public string ExecutionProvider => inner.ExecutionProvider;

        public IReadOnlyList<string> ProviderNotes { get; } =
            inner.ProviderAttempts.Where(a => !a.Succeeded).Select(a => $"{a.Provider}: {a.Reason}").ToList();

        public IReadOnlyList<ProviderAttempt> ProviderAttempts => inner.ProviderAttempts;

        public int TensorLength => inner.Preprocessor.TensorLength;

        public void Preprocess(Mat rgb, Span<float> destination) => inner.Preprocessor.Preprocess(rgb, destination);

        public IReadOnlyList<HierarchicalPrediction> Classify(float[] batch, int count) => inner.Classify(batch, count);

        public void WarmUp(int batchSize, int runs)
        {
            inner.WarmUp(batchSize, runs);
            // Warm-up only runs the graph; decode one output too, so a model whose outputs cannot be decoded (NaN or
            // infinite scores, say) is refused here, beside the serving model, instead of failing every image once swapped in.
            var probe = new float[inner.Preprocessor.TensorLength];
            Array.Fill(probe, 0.5f);
            inner.Classify(probe, 1);
        }

        public void Dispose() => inner.Dispose();
    }
}
