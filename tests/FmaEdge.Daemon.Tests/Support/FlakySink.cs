using FmaEdge.Daemon.Output;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A test sink that stores through a real <see cref="JsonFolderResultSink"/> (which the harness reads results
/// from) and forwards everything to it; subclasses change the commit path only.</summary>
public abstract class FolderSinkWrapper(JsonFolderResultSink inner) : IResultSink
{
    public JsonFolderResultSink Inner { get; } = inner;

    public SinkState State => Inner.State;

    public Task StartAsync(CancellationToken cancellationToken) => Inner.StartAsync(cancellationToken);

    public ValueTask<string?> FindCommittedAsync(string sourceId, string fileKey, CancellationToken cancellationToken) =>
        Inner.FindCommittedAsync(sourceId, fileKey, cancellationToken);

    public virtual ValueTask<CommitResult> CommitResultAsync(ImageResult result, CancellationToken cancellationToken) =>
        Inner.CommitResultAsync(result, cancellationToken);

    public ValueTask PublishEventAsync(DaemonEvent evt, CancellationToken cancellationToken) => Inner.PublishEventAsync(evt, cancellationToken);

    public ValueTask PublishStatusAsync(NodeStatus status, CancellationToken cancellationToken) => Inner.PublishStatusAsync(status, cancellationToken);

    public ValueTask PublishModelAsync(FmaEdge.Messaging.Contract.ModelMessage model, CancellationToken cancellationToken) => Inner.PublishModelAsync(model, cancellationToken);

    public ValueTask PublishStatsAsync(FmaEdge.Daemon.Status.StatusSnapshot stats, CancellationToken cancellationToken) => Inner.PublishStatsAsync(stats, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Inner.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => Inner.DisposeAsync();
}

/// <summary>A real <see cref="JsonFolderResultSink"/> whose commits fail (as on a full disk) while <see cref="Failing"/> is set.</summary>
public sealed class FlakySink(JsonFolderResultSink inner) : FolderSinkWrapper(inner)
{
    public volatile bool Failing;

    public int FailedCommits;

    public override ValueTask<CommitResult> CommitResultAsync(ImageResult result, CancellationToken cancellationToken)
    {
        if (Failing)
        {
            Interlocked.Increment(ref FailedCommits);
            throw new IOException("No space left on device");
        }

        return Inner.CommitResultAsync(result, cancellationToken);
    }
}
