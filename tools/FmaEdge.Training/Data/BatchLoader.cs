using System.Collections.Concurrent;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Vision;

namespace FmaEdge.Training.Data;

/// <summary>One batch of preprocessed images (N x 3 x S x S floats, CHW) and per-level targets. Buffers are
/// pooled by <see cref="BatchLoader"/>: hand the batch back with <see cref="BatchLoader.Return"/>.</summary>
public sealed class Batch
{
    public Batch(int capacity, int tensorLength, int levels)
    {
        Images = new float[capacity * tensorLength];
        Targets = Enumerable.Range(0, levels).Select(_ => new long[capacity]).ToArray();
        Indices = new int[capacity];
    }

    public float[] Images { get; }

    /// <summary>[level][i] class index of sample i at that level.</summary>
    public long[][] Targets { get; }

    /// <summary>Cache index of each sample.</summary>
    public int[] Indices { get; }

    public int Count { get; internal set; }

    public int Number { get; internal set; }
}

/// <summary>Produces batches on a background thread (augment + shared preprocessing, parallel within a batch)
/// while the training thread computes, with a small pool of reused buffers. One consumer; dispose to stop.</summary>
public sealed class BatchLoader : IDisposable
{
    private readonly BlockingCollection<Batch> _free = new();
    private readonly BlockingCollection<Batch> _ready;
    private readonly CancellationTokenSource _cts;
    private readonly Task _producer;

    /// <param name="order">Cache indices in the order to serve them.</param>
    /// <param name="augment">Null for evaluation (no augmentation).</param>
    /// <param name="sampleSeed">Per-sample random streams derive from (sampleSeed, position), so results do
    /// not depend on thread scheduling.</param>
    public BatchLoader(ImageCache cache, IReadOnlyList<int> order, int batchSize, CategoryTree tree, ImagePreprocessor pre,
        AugmentationOptions? augment, long sampleSeed, int workers, CancellationToken ct, int prefetch = 2)
    {
        var len = pre.TensorLength;
        for (var i = 0; i < prefetch + 1; i++)
        {
            _free.Add(new Batch(batchSize, len, tree.Depth));
        }

        _ready = new BlockingCollection<Batch>(prefetch);
        _cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        BatchCount = (order.Count + batchSize - 1) / batchSize;
        var token = _cts.Token;
        _producer = Task.Factory.StartNew(() =>
        {
            try
            {
                var po = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, workers), CancellationToken = token };
                for (var b = 0; b < BatchCount; b++)
                {
                    var batch = _free.Take(token);
                    var start = b * batchSize;
                    var n = Math.Min(batchSize, order.Count - start);
                    batch.Count = n;
                    batch.Number = b;
                    Parallel.For(0, n, po, i =>
                    {
                        var idx = order[start + i];
                        batch.Indices[i] = idx;
                        var path = tree.PathOfLeaf(cache.Leaves[idx]);
                        for (var l = 0; l < path.Length; l++)
                        {
                            batch.Targets[l][i] = path[l];
                        }

                        var dst = batch.Images.AsSpan(i * len, len);
                        var src = cache[idx];
                        using var aug = augment?.Apply(src, DeterministicRandom.Create(sampleSeed, start + i));
                        pre.Preprocess(aug ?? src, dst);
                    });
                    _ready.Add(batch, token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                _ready.CompleteAdding();
            }
        }, token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    public int BatchCount { get; }

    /// <summary>Batches in order; the caller returns each one with <see cref="Return"/> when done with it.</summary>
    public IEnumerable<Batch> Batches()
    {
        foreach (var b in _ready.GetConsumingEnumerable())
        {
            yield return b;
        }

        // Surface a producer failure (e.g. a preprocessing bug) instead of ending the epoch early.
        try
        {
            _producer.Wait();
        }
        catch (AggregateException e) when (e.GetBaseException() is not OperationCanceledException)
        {
            throw new InvalidOperationException("the batch loader failed: " + e.GetBaseException().Message, e);
        }
    }

    public void Return(Batch batch) => _free.Add(batch);

    public void Dispose()
    {
        _cts.Cancel();
        try
        {
            _producer.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }

        _cts.Dispose();
        _free.Dispose();
        _ready.Dispose();
    }
}
