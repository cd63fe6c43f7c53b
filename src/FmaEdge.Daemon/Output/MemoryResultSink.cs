using System.Collections.Concurrent;
using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>An <see cref="IResultSink"/> that keeps results and events in memory and never reports duplicates (no
/// journal): for one-shot runs such as <c>fma-edge classify</c>. Thread-safe.</summary>
public sealed class MemoryResultSink : IResultSink
{
    private readonly ConcurrentQueue<ImageResult> _results = new();
    private readonly ConcurrentDictionary<string, ImageResult> _byId = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<DaemonEvent> _events = new();
    private readonly MessageIdGenerator _ids = new();

    /// <summary>Results in commit order.</summary>
    public IReadOnlyList<ImageResult> Results => _results.ToArray();

    /// <summary>Results by the message id their commit was given.</summary>
    public IReadOnlyDictionary<string, ImageResult> ResultsById => _byId;

    /// <summary>Events in publish order.</summary>
    public IReadOnlyList<DaemonEvent> Events => _events.ToArray();

    public SinkState State => new("memory", true, "memory", 0);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask<string?> FindCommittedAsync(string sourceId, string fileKey, CancellationToken cancellationToken) => ValueTask.FromResult<string?>(null);

    public ValueTask<CommitResult> CommitResultAsync(ImageResult result, CancellationToken cancellationToken)
    {
        var id = _ids.Next(DateTimeOffset.UtcNow);
        _byId[id] = result;
        _results.Enqueue(result);
        return ValueTask.FromResult(new CommitResult(CommitOutcome.Committed, id, _results.Count));
    }

    public ValueTask PublishEventAsync(DaemonEvent evt, CancellationToken cancellationToken)
    {
        _events.Enqueue(evt);
        return ValueTask.CompletedTask;
    }

    public ValueTask PublishStatusAsync(NodeStatus status, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask PublishModelAsync(ModelMessage model, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask PublishStatsAsync(Status.StatusSnapshot stats, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
