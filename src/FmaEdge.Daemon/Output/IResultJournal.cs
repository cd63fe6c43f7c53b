namespace FmaEdge.Daemon.Output;

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
