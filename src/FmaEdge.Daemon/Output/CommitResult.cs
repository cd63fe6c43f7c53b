namespace FmaEdge.Daemon.Output;

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
