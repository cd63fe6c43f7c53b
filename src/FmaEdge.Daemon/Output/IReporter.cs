using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>The best-effort half of a sink: what the floor is told besides results. Never throws for a delivery
/// problem.</summary>
public interface IReporter
{
    /// <summary>Publishes an event (bad image, duplicate, model swapped/rejected, source down/up, disk low). Best effort
    /// but should be stored while offline.</summary>
    ValueTask PublishEventAsync(DaemonEvent evt, CancellationToken cancellationToken);

    /// <summary>Publishes the retained node status (online, version, session, model). Latest value wins.</summary>
    ValueTask PublishStatusAsync(NodeStatus status, CancellationToken cancellationToken);

    /// <summary>Publishes the retained active-model description (built by <see cref="ModelMessage.From"/>). Latest value wins.</summary>
    ValueTask PublishModelAsync(ModelMessage model, CancellationToken cancellationToken);

    /// <summary>Publishes periodic statistics (the whole status snapshot: counts, per-source state, latency percentiles,
    /// disk). Not stored while offline: stale stats are worthless.</summary>
    ValueTask PublishStatsAsync(Status.StatusSnapshot stats, CancellationToken cancellationToken);
}
