using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Daemon.Models;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A real classifier with a test's hook around <see cref="Classify"/>: everything else goes to the wrapped one.</summary>
internal class WrappedClassifier(IClassifier inner, Func<Func<IReadOnlyList<HierarchicalPrediction>>, IReadOnlyList<HierarchicalPrediction>> around) : IClassifier
{
    public ValidatedModel Model => inner.Model;
    public string ExecutionProvider => inner.ExecutionProvider;
    public IReadOnlyList<string> ProviderNotes => inner.ProviderNotes;
    public IReadOnlyList<FmaEdge.Inference.ProviderAttempt> ProviderAttempts => inner.ProviderAttempts;
    public int TensorLength => inner.TensorLength;
    public int ConcurrentBatches => inner.ConcurrentBatches;
    public int BatchLimit => inner.BatchLimit;
    public void Preprocess(Mat rgb, Span<float> destination) => inner.Preprocess(rgb, destination);
    public void WarmUp(int batchSize, int runs, CancellationToken ct) => inner.WarmUp(batchSize, runs, ct);
    public void Dispose() => inner.Dispose();

    public IReadOnlyList<HierarchicalPrediction> Classify(float[] batch, int count) => around(() => inner.Classify(batch, count));
}

/// <summary>Loads real classifiers and wraps each as <see cref="WrappedClassifier"/>.</summary>
internal sealed class WrappingLoader(IClassifierLoader inner,
    Func<Func<IReadOnlyList<HierarchicalPrediction>>, IReadOnlyList<HierarchicalPrediction>> around) : IClassifierLoader
{
    public IClassifier Load(string path, CancellationToken cancellationToken) => new WrappedClassifier(inner.Load(path, cancellationToken), around);
}
