using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using OpenCvSharp;

namespace FmaEdge.Daemon.Models;

/// <summary>A loaded, warmed model the pipeline can run: preprocessing plus batched inference plus decoding.
/// <see cref="Classify"/> has up to <see cref="ConcurrentBatches"/> callers at once (the pipeline's inference workers);
/// <see cref="WarmUp"/> one (the loader, before the model serves). <see cref="Preprocess"/> is thread-safe and must not depend on native inference
/// resources: the decode stage may still preprocess one image for a model that was just swapped out and disposed
/// (the inference stage then redoes that tensor for the new model).</summary>
public interface IClassifier : IDisposable
{
    /// <summary>The validated model file this classifier serves.</summary>
    ValidatedModel Model { get; }

    /// <summary>The execution provider in use: "TensorRT", "CUDA" or "CPU".</summary>
    string ExecutionProvider { get; }

    /// <summary>Why preferred providers were not used, one line each (empty when the first choice loaded).</summary>
    IReadOnlyList<string> ProviderNotes { get; }

    /// <summary>Every provider tried, in order: whether it loaded, ONNX Runtime's whole reason when not, and the
    /// options it was given.</summary>
    IReadOnlyList<FmaEdge.Inference.ProviderAttempt> ProviderAttempts { get; }

    /// <summary>Floats per image in the input tensor (C*H*W).</summary>
    int TensorLength { get; }

    /// <summary>Writes the model's input tensor for an 8-bit RGB (or one-channel gray) image into <paramref name="destination"/>.</summary>
    void Preprocess(Mat rgb, Span<float> destination);

    /// <summary>Batches the pipeline may run on this classifier at once (>= 1). ONNX Runtime sessions allow concurrent
    /// runs: a model with one intra-op thread on a 2-core machine runs two batches at once to use both cores.</summary>
    int ConcurrentBatches => 1;

    /// <summary>The largest batch this model should run (>= 1), known after <see cref="WarmUp"/>: on the CPU provider
    /// with <c>Inference:TimeBatches</c> the size <see cref="BatchSizeProbe"/> chose; otherwise no limit of its own. The
    /// pipeline gathers at most this many, and never more than <c>Inference:MaxBatch</c>.</summary>
    int BatchLimit => int.MaxValue;

    /// <summary>Runs <paramref name="count"/> images laid out back to back in <paramref name="batch"/> and decodes them.</summary>
    IReadOnlyList<HierarchicalPrediction> Classify(float[] batch, int count);

    /// <summary>Runs dummy batches so the first real image does not pay for lazy initialisation (and, where the
    /// implementation times batch sizes, times them); <paramref name="ct"/> ends the timing between rounds.</summary>
    void WarmUp(int batchSize, int runs, CancellationToken ct);
}

/// <summary>Loads classifiers from model files. Thread-safe.</summary>
public interface IClassifierLoader
{
    /// <summary>Validates, loads and returns a classifier; throws <see cref="InvalidModelException"/> for a contract
    /// violation and other exceptions when the runtime cannot load it.</summary>
    IClassifier Load(string path, CancellationToken cancellationToken);
}
