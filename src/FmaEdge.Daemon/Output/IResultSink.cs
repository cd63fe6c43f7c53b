using FmaEdge.Core.Decoding;
using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>Where results go, in two roles: <see cref="IResultJournal"/> (durable: what was committed, commit results)
/// and <see cref="IReporter"/> (best effort: events, retained status and model, stats), plus the connection's life. The
/// MQTT sink (durable outbox + published journal) implements it in production, <see cref="JsonFolderResultSink"/> in
/// tests and offline use; a second protocol is one more implementation. Parts that only report (sources, the model
/// manager) take an <see cref="IReporter"/>.
/// Thread-safety: implementations must accept calls from several threads at once.</summary>
public interface IResultSink : IResultJournal, IReporter, IAsyncDisposable
{
    /// <summary>Starts connections and replays anything stored but not yet delivered. Called once before any other member.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Delivery state for the status snapshot; cheap and non-blocking.</summary>
    SinkState State { get; }

    /// <summary>Delivers what can be delivered within the token's time and stops (SIGTERM drain). Results still undelivered stay stored.</summary>
    Task StopAsync(CancellationToken cancellationToken);
}

/// <summary>The durable half of a sink: the journal of committed results. The pipeline calls
/// <see cref="CommitResultAsync"/> from one thread in arrival order per source and expects that order to be kept.</summary>
public interface IResultJournal
{
    /// <summary>The message id of the result already committed for (<paramref name="sourceId"/>, <paramref name="fileKey"/>),
    /// or null when there is none, so a restarted daemon or a re-sent file need not be classified again (the journal of
    /// what was published). Cheap; called for every file.</summary>
    ValueTask<string?> FindCommittedAsync(string sourceId, string fileKey, CancellationToken cancellationToken);

    /// <summary>Durably records the result (it survives kill -9 once this returns) and queues it for delivery, unless a
    /// result with the same (<see cref="ImageResult.SourceId"/>, <see cref="ImageResult.FileKey"/>) was committed before:
    /// then nothing is stored and the outcome says <see cref="CommitOutcome.Duplicate"/> with the first message id.
    /// The sink owns result identity: it assigns the message id and the per-source sequence number in the same durable
    /// write, so a result that is not stored takes no number. The check and the insert are atomic.</summary>
    ValueTask<CommitResult> CommitResultAsync(ImageResult result, CancellationToken cancellationToken);

    /// <summary>Durably records several results handed over together (what the pipeline has ready at once), in order.
    /// <see cref="BatchCommit.Stored"/> holds one outcome for each of the first results that were stored; when storing
    /// failed, <see cref="BatchCommit.Failure"/> says why and the results after those were not stored. This default
    /// commits one by one; a sink with a transactional store overrides it to store all or none with one durable write
    /// (one fsync for the batch instead of one per image).</summary>
    async ValueTask<BatchCommit> CommitResultsAsync(IReadOnlyList<ImageResult> results, CancellationToken cancellationToken)
    {
        var stored = new List<CommitResult>(results.Count);
        foreach (var r in results)
        {
            try
            {
                stored.Add(await CommitResultAsync(r, cancellationToken));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return new BatchCommit(stored, e);
            }
        }

        return new BatchCommit(stored, null);
    }
}

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

/// <summary>Outcome of <see cref="IResultJournal.CommitResultAsync"/>.</summary>
public enum CommitOutcome
{
    /// <summary>Stored for the first time and queued for delivery.</summary>
    Committed,

    /// <summary>A result for the same source and file key exists; nothing stored.</summary>
    Duplicate,
}

/// <summary>Outcome of a commit: the message id the sink assigned and the result's per-source sequence number, or for a
/// duplicate the earlier result's message id (and sequence 0: nothing was stored).</summary>
public sealed record CommitResult(CommitOutcome Outcome, string MessageId, long Sequence = 0);

/// <summary>Outcome of <see cref="IResultJournal.CommitResultsAsync"/>: outcomes of the first <c>Stored.Count</c> results;
/// a non-null <see cref="Failure"/> means the rest were not stored.</summary>
public sealed record BatchCommit(IReadOnlyList<CommitResult> Stored, Exception? Failure);

/// <summary>Delivery state of a sink, shown by <c>fma-edge status</c>.</summary>
/// <param name="Kind">"mqtt", "folder", ...</param>
/// <param name="Connected">True while results are being delivered (broker connected, folder writable).</param>
/// <param name="Endpoint">Where results go (broker URI, folder).</param>
/// <param name="OutboxDepth">Committed results not yet delivered.</param>
/// <param name="Detail">Why not connected, cap reached, etc.; null when all is well.</param>
public sealed record SinkState(string Kind, bool Connected, string Endpoint, long OutboxDepth, string? Detail = null);

/// <summary>One classified image, everything a result message carries except its identity (message id, session,
/// sequence), which the sink assigns when it stores it. Immutable.</summary>
public sealed record ImageResult
{
    public required string Node { get; init; }
    public required string SourceId { get; init; }

    /// <summary>File name for folder sources, frame id for cameras.</summary>
    public required string ImageId { get; init; }

    /// <summary>Path at arrival (folder sources) or the camera URI.</summary>
    public required string ImagePath { get; init; }

    /// <summary>SHA-256 of the image bytes (encoded file, or the raw frame for cameras), lower-case hex.</summary>
    public required string Sha256 { get; init; }

    /// <summary>Size of what <see cref="Sha256"/> hashed: the file's bytes, or the raw frame's.</summary>
    public required long ImageBytes { get; init; }

    /// <summary>De-duplication key within the source: the SHA-256 for files, a unique frame key for cameras.</summary>
    public required string FileKey { get; init; }
    public required DateTimeOffset CapturedUtc { get; init; }
    public required DateTimeOffset ClassifiedUtc { get; init; }
    public required string ModelId { get; init; }

    /// <summary>The model manifest's version; null when the manifest has none.</summary>
    public string? ModelVersion { get; init; }
    public required string ModelSha256 { get; init; }
    public required string ExecutionProvider { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required HierarchicalPrediction Prediction { get; init; }
    /// <summary>Per-stage latency in milliseconds; <c>Total</c> runs from arrival to the result.</summary>
    public required StageLatency Latency { get; init; }
}

/// <summary>A notice or error for the floor. <see cref="Kind"/> is one of <see cref="EventKinds"/>.</summary>
public sealed record DaemonEvent(string Kind, string Severity, string Message, DateTimeOffset TimestampUtc,
    string? SourceId = null, string? Subject = null, string? Reason = null)
{
    /// <summary>Extra fields (counts, hashes, original message ids).</summary>
    public IReadOnlyDictionary<string, string>? Data { get; init; }
}

/// <summary>The retained status fact: online/offline with version, session and the serving model.</summary>
public sealed record NodeStatus(string Node, bool Online, string Version, string Session, DateTimeOffset SinceUtc,
    string? ModelId, string? ModelSha256, string Health);
