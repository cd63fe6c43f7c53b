using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Vision;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace FmaEdge.Inference;

/// <summary>A model-contract ONNX file loaded into an ONNX Runtime session on the best provider that works,
/// with the decoder and preprocessor its manifest asks for. <see cref="Run"/> and <see cref="Classify"/> are
/// thread-safe (ONNX Runtime sessions allow concurrent runs). <see cref="Dispose"/> waits for runs in flight and
/// later runs throw <see cref="ObjectDisposedException"/>: a session freed under a running batch would crash the
/// process in native code, so that can never happen, whatever the caller's shutdown order.</summary>
public sealed class OnnxClassifier : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _outputNames;
    private readonly int[] _classes;

    // Runs hold the read side, Dispose the write side (see the class summary).
    // Never disposed (CA2213): a Classify call may still be waiting to enter when Dispose returns, and disposing the lock
    // under a waiter throws; it holds no OS handle until contended, and then only until it is collected.
#pragma warning disable CA2213
    private readonly ReaderWriterLockSlim _lifetime = new(LockRecursionPolicy.NoRecursion);
#pragma warning restore CA2213
    private bool _disposed;
    private readonly RunOptions _runOptions = new();

    private OnnxClassifier(InferenceSession session, ValidatedModel model, string provider, IReadOnlyList<ProviderAttempt> attempts)
    {
        _session = session;
        Model = model;
        ExecutionProvider = provider;
        ProviderAttempts = attempts;
        Decoder = HierarchicalDecoder.ForModel(model);
        Preprocessor = ImagePreprocessor.For(model.Manifest);
        _outputNames = model.Manifest.Outputs.OrderBy(o => o.Level).Select(o => o.Name).ToArray();
        _classes = model.Tree.LevelSizes;
    }

    /// <summary>The validated model file (manifest, tree, hash).</summary>
    public ValidatedModel Model { get; }

    /// <summary>Decoder configured from the manifest (temperatures, thresholds, path scoring).</summary>
    public HierarchicalDecoder Decoder { get; }

    /// <summary>Preprocessor configured from the manifest.</summary>
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>The provider that serves this session: "tensorrt", "cuda" or "cpu".</summary>
    public string ExecutionProvider { get; }

    /// <summary>Every provider tried, in order, with the reason for each that failed.</summary>
    public IReadOnlyList<ProviderAttempt> ProviderAttempts { get; }

    /// <summary>Validates the file against the contract and opens a session, falling back along the
    /// configured providers. Throws <see cref="InvalidModelException"/> for a bad file and
    /// <see cref="InvalidOperationException"/> when no provider (not even CPU) can run it.</summary>
    public static OnnxClassifier Load(string path, InferenceOptions? options = null, ILogger? logger = null)
    {
        options ??= new InferenceOptions();
        logger ??= NullLogger.Instance;
        var optionErrors = options.Validate();
        if (optionErrors.Count > 0)
        {
            throw new ArgumentException("invalid inference options: " + string.Join("; ", optionErrors), nameof(options));
        }

        // Validate and load the very same bytes, so a file replaced in between cannot slip past the check.
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelException(new ContractReport(path, [$"cannot read file: {e.Message}"], null));
        }

        var report = bytes.Length == 0 ? new ContractReport(path, ["file is empty"], null) : ModelContract.Validate(bytes, path);
        if (!report.IsValid)
        {
            throw new InvalidModelException(report);
        }

        var model = report.Model!;
        var chain = options.Providers.Select(p => p.ToLowerInvariant()).Distinct().ToList();
        if (!chain.Contains(ExecutionProviders.Cpu))
        {
            chain.Add(ExecutionProviders.Cpu);
        }

        var attempts = new List<ProviderAttempt>();
        for (var i = 0; i < chain.Count; i++)
        {
            var provider = chain[i];
            SessionOptions? so = null;
            IReadOnlyDictionary<string, string> settings = new Dictionary<string, string>();
            try
            {
                so = BaseOptions(options);
                settings = ProviderSettings.For(provider, options, model);
                ProviderSettings.Append(so, provider, settings);
                var session = new InferenceSession(bytes, so);
                attempts.Add(new ProviderAttempt(provider, true, null) { Settings = settings });
                logger.LogInformation("Model {ModelId} ({Hash}) loaded on {Provider}", model.Manifest.Model.Id, model.ShortHash, provider);
                return new OnnxClassifier(session, model, provider, attempts);
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException or InvalidOperationException
                or TypeInitializationException or IOException or UnauthorizedAccessException)
            {
                var reason = FullReason(e);
                attempts.Add(new ProviderAttempt(provider, false, reason) { Settings = settings });
                logger.LogWarning("Execution provider {Provider} unavailable, falling back: {Reason}", provider, reason);
            }
            finally
            {
                so?.Dispose();
            }
        }

        throw new InvalidOperationException("no execution provider could run the model: " +
            string.Join("; ", attempts.Select(a => $"{a.Provider}: {a.Reason}")));
    }

    /// <summary>Runs a batch of preprocessed images (<paramref name="n"/> x TensorLength floats) and
    /// returns each level's raw output flattened to [n * classes], coarse to fine.</summary>
    public IReadOnlyList<float[]> Run(float[] batch, int n)
    {
        var len = Preprocessor.TensorLength;
        if (n < 1 || batch.Length < n * len)
        {
            throw new ArgumentException($"batch holds {batch.Length} floats; {n} images need {n * len}", nameof(batch));
        }

        _lifetime.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return RunSession(batch, n, len);
        }
        finally
        {
            _lifetime.ExitReadLock();
        }
    }

    private float[][] RunSession(float[] batch, int n, int len)
    {
        long[] shape = [n, 3, Preprocessor.Height, Preprocessor.Width];
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, batch.AsMemory(0, n * len), shape);
        // The run options live as long as the classifier: a temporary could be finalised by the GC while the
        // native run still reads it (an intermittent segfault inside libonnxruntime under allocation pressure).
        using var results = _session.Run(_runOptions, [Model.Manifest.Input.Name], [input], _outputNames);
        var outputs = new float[_outputNames.Length][];
        for (var l = 0; l < outputs.Length; l++)
        {
            var span = results[l].GetTensorDataAsSpan<float>();
            if (span.Length != n * _classes[l])
            {
                throw new InvalidOperationException($"output '{_outputNames[l]}' has {span.Length} values; expected {n * _classes[l]}");
            }

            outputs[l] = span.ToArray();
        }

        return outputs;
    }

    /// <summary>Runs and decodes a batch.</summary>
    public IReadOnlyList<HierarchicalPrediction> Classify(float[] batch, int n)
    {
        var outputs = Run(batch, n);
        var result = new HierarchicalPrediction[n];
        for (var i = 0; i < n; i++)
        {
            result[i] = Decoder.DecodeBatchItem(outputs, i);
        }

        return result;
    }

    /// <summary>Classifies one decoded RGB image.</summary>
    public HierarchicalPrediction Classify(OpenCvSharp.Mat rgb) => Classify(Preprocessor.Preprocess(rgb), 1)[0];

    /// <summary>Runs dummy batches so the first real image does not pay for lazy initialisation
    /// (and, on TensorRT, for engine building).</summary>
    public void WarmUp(int batch = 1, int runs = 2)
    {
        var data = new float[Math.Max(1, batch) * Preprocessor.TensorLength];
        for (var i = 0; i < runs; i++)
        {
            Run(data, Math.Max(1, batch));
        }
    }

    public void Dispose()
    {
        _lifetime.EnterWriteLock();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _session.Dispose();
            _runOptions.Dispose();
        }
        finally
        {
            _lifetime.ExitWriteLock();
        }
    }

    private static SessionOptions BaseOptions(InferenceOptions options)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        so.IntraOpNumThreads = options.EffectiveIntraOpThreads;

        // Idle intra-op workers sleep instead of spinning: in the daemon they share the cores with decoding, the
        // outbox and MQTT, and spinning workers took that CPU (fma-edge bench: the pipeline reached 0.64 of the
        // ceiling with 2 threads on 2 cores with spinning, see docs/performance.md).
        if (!options.AllowSpinning)
        {
            so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        }

        if (options.InterOpThreads > 0)
        {
            so.InterOpNumThreads = options.InterOpThreads;
        }

        return so;
    }

    /// <summary>ONNX Runtime's whole message (its first line is often only "[ErrorCode:Fail]"; the library that could
    /// not be loaded and why come after), with inner exceptions, on one line, bounded so a runaway message cannot
    /// flood status.</summary>
    internal static string FullReason(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null; x = x.InnerException)
        {
            parts.AddRange(x.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        var reason = string.Join(" ", parts.Distinct());
        return reason.Length > 4000 ? reason[..4000] + "..." : reason;
    }
}
