using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Outbox;

public sealed class SqliteOutboxTests
{
    private const string Session = "01a21a6f0c1573209c290ad2969fbda3";

    private static ResultMessage Result(int i, string source = "src") =>
        ResultMessage.From(Samples.Prediction(i), source, DateTimeOffset.UtcNow, Samples.Image(i), Samples.Model, new StageLatency(1, 1, 1, 3));

    private static EventMessage Event(int i, int size = 0) =>
        new() { Kind = "test_event", Message = $"event {i}" + new string('.', size) };

    private static SqliteOutbox Open(string path, long maxMessages = 1000, long maxBytes = 10_000_000, string session = Session,
        TimeProvider? time = null) => new(path, session, maxMessages, maxBytes, time);

    [Fact]
    public void Feed_GetsEveryCommittedResult_SurvivesReopen_IsCappedAndPurgedWhenNoLongerConfigured()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        var ids = new List<string>();
        using (var box = new SqliteOutbox(path, Session, 12, 10_000_000, feeds: ["sparkplug"]))
        {
            foreach (var (commit, _) in Enumerable.Range(0, 5).Select(i => box.CommitResult("t", Result(i), $"k{i}", DuplicatePolicy.Skip, 0)))
            {
                ids.Add(commit.MessageId);
            }

            box.CommitResult("t", Result(0), "k0", DuplicatePolicy.Skip, 0); // a skipped duplicate is not fed
            box.EnqueueEvent("t", Event(0), 0); // events are not fed
            var rows = box.PeekFeed("sparkplug", 100);
            Assert.Equal(ids, rows.Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).MessageId));
            Assert.Equal(2, box.RemoveFromFeed("sparkplug", [rows[0].RowId, rows[1].RowId]));
            Assert.Equal(5, box.Peek(100).Count(r => r.Kind == SqliteOutbox.KindResult)); // the JSON queue is separate
            Assert.Equal((3, 0), box.FeedStats("sparkplug"));
        }

        using (var box = new SqliteOutbox(path, Session, 12, 10_000_000, feeds: ["sparkplug"]))
        {
            Assert.Equal(ids.Skip(2), box.PeekFeed("sparkplug", 100).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).MessageId));
            for (var i = 5; i < 15; i++)
            {
                box.CommitResult("t", Result(i), null, DuplicatePolicy.Skip, 0);
            }

            Assert.Equal((12, 1), box.FeedStats("sparkplug")); // 13 would pass the cap: the oldest went
        }

        using (var box = new SqliteOutbox(path, Session, 12, 10_000_000))
        {
            box.CommitResult("t", Result(20), null, DuplicatePolicy.Skip, 0);
        }

        using (var box = new SqliteOutbox(path, Session, 12, 10_000_000, feeds: ["sparkplug"]))
        {
            Assert.Empty(box.PeekFeed("sparkplug", 100)); // switched off meanwhile: its rows were dropped, not kept for ever
        }
    }

    [Fact]
    public void NextCounter_StartsAtZero_WrapsAtModulo_AndSurvivesReopen()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        using (var box = Open(path))
        {
            Assert.Equal([0L, 1, 2], Enumerable.Range(0, 3).Select(_ => box.NextCounter("bd", 4)));
        }

        using (var box = Open(path))
        {
            Assert.Equal([3L, 0, 1], Enumerable.Range(0, 3).Select(_ => box.NextCounter("bd", 4)));
            Assert.Equal(0, box.NextCounter("other", 4));
        }
    }

    [Fact]
    public void Peek_AfterEnqueueAndRemove_ReturnsRemainingInInsertionOrder()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"));
        var queued = Enumerable.Range(0, 20).Select(i => box.EnqueueEvent("t", Event(i), 0)).ToList();
        var rowIds = queued.Select(q => q.RowId).ToList();
        Assert.Equal(rowIds.Order().ToList(), rowIds);
        Assert.True(box.Remove(rowIds[0]));
        Assert.False(box.Remove(rowIds[0]));
        box.Remove(rowIds[5]);

        var rows = box.Peek(100);
        Assert.Equal(18, rows.Count);
        Assert.Equal(Enumerable.Range(1, 19).Where(i => i != 5).Select(i => queued[i].Stored.MessageId), rows.Select(r => r.MessageId));
        Assert.All(rows, r => Assert.Equal(Session, MessageJson.Deserialize<EventMessage>(r.Payload).Session));
        Assert.Equal(18, box.Stats.Depth);
        Assert.Equal(rows.Sum(r => (long)r.Payload.Length), box.Stats.Bytes);
    }

    [Fact]
    public void Reopen_AbandonedWithoutDispose_KeepsEveryCommittedRowAndJournal()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        var box = Open(path);
        for (var i = 0; i < 30; i++)
        {
            box.CommitResult("fma/n/src/result", Result(i), $"file-{i}", DuplicatePolicy.Skip, 0);
        }

        // What a kill -9 leaves: the files as they are on disk while the connection is still open.
        var crashCopy = dir.File("crash/o.db");
        foreach (var suffix in new[] { "", "-wal" })
        {
            if (File.Exists(path + suffix))
            {
                File.Copy(path + suffix, crashCopy + suffix);
            }
        }

        using var fromCrash = Open(crashCopy);
        Assert.Equal(30, fromCrash.Depth);
        Assert.Equal(30, fromCrash.JournalCount);
        Assert.NotNull(fromCrash.FindJournalled("src", "file-29"));
        Assert.Null(fromCrash.Recovery);

        // And the abandoned instance itself: a second open of the live file sees the same rows.
        using var second = Open(path);
        Assert.Equal(30, second.Depth);
        Assert.Equal(Enumerable.Range(1, 30).Select(i => (long)i), second.Peek(100).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).Seq));
        GC.KeepAlive(box);
    }

    [Fact]
    public void CommitResult_SameFileKeyTwice_SkipsOrMarksDuplicate()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"));
        var first = box.CommitResult("t", Result(1), "a.png|123", DuplicatePolicy.Skip, 0).Commit;
        var skipped = box.CommitResult("t", Result(2), "a.png|123", DuplicatePolicy.Skip, 0).Commit;
        var marked = box.CommitResult("t", Result(3), "a.png|123", DuplicatePolicy.PublishMarked, 0).Commit;
        var otherSource = box.CommitResult("t", Result(4, "other"), "a.png|123", DuplicatePolicy.Skip, 0).Commit;

        Assert.Equal(CommitStatus.Enqueued, first.Status);
        Assert.Equal(CommitStatus.DuplicateSkipped, skipped.Status);
        Assert.Equal(first.MessageId, skipped.OriginalMessageId);
        Assert.Equal(CommitStatus.DuplicateEnqueued, marked.Status);
        Assert.Equal(first.MessageId, marked.OriginalMessageId);
        Assert.Equal(CommitStatus.Enqueued, otherSource.Status);
        Assert.Equal(3, box.Depth);

        var stored = box.Peek(10).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload)).ToList();
        Assert.False(stored[0].Duplicate);
        Assert.True(stored[1].Duplicate);
        Assert.Equal(first.MessageId, stored[1].DuplicateOf);
    }

    [Fact]
    public void CommitResults_Batch_OneTransactionJudgedInOrderWithDuplicatesInsideAndBefore()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        using (var box = Open(path))
        {
            var before = box.CommitResult("t", Result(0), "old.png|1", DuplicatePolicy.Skip, 0).Commit;
            var (commits, drop) = box.CommitResults(
            [
                new ResultToCommit("t", Result(1), "a.png|1"),
                new ResultToCommit("t", Result(2), "old.png|1"), // journalled before the batch
                new ResultToCommit("t", Result(3), "b.png|1"),
                new ResultToCommit("t", Result(4), "a.png|1"), // repeated inside the batch
                new ResultToCommit("t", Result(5), null),
            ], DuplicatePolicy.Skip, 0);

            Assert.Null(drop);
            Assert.Equal([CommitStatus.Enqueued, CommitStatus.DuplicateSkipped, CommitStatus.Enqueued, CommitStatus.DuplicateSkipped, CommitStatus.Enqueued],
                commits.Select(c => c.Status));
            Assert.Equal(before.MessageId, commits[1].OriginalMessageId);
            Assert.Equal(commits[0].MessageId, commits[3].OriginalMessageId);
            Assert.True(commits[0].OutboxRowId < commits[2].OutboxRowId && commits[2].OutboxRowId < commits[4].OutboxRowId);
            // Skipped duplicates take no number: seq 2, 3, 4 after the 1 committed before the batch.
            Assert.Equal([2L, 0, 3, 0, 4], commits.Select(c => c.Seq));
            Assert.Equal(4, box.Stats.Depth);
            Assert.Equal(box.Peek(100).Sum(r => (long)r.Payload.Length), box.Stats.Bytes);
        }

        // Durable: a new process sees the rows and the journal.
        using var again = Open(path);
        Assert.Equal(4, again.Stats.Depth);
        Assert.NotNull(again.FindJournalled("src", "b.png|1"));
    }

    [Fact]
    public void CommitResults_OneRowCannotBeStored_NoneOfTheBatchIsStoredAndCountsStay()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"), maxBytes: 8 * 1024);
        box.CommitResult("t", Result(0), "a.png|1", DuplicatePolicy.Skip, 0);
        var (depth, bytes) = (box.Stats.Depth, box.Stats.Bytes);
        var huge = Result(2) with { Model = Samples.Model with { Id = new string('x', 10_000) } }; // over the 8 KiB cap
        Assert.Throws<ArgumentException>(() => box.CommitResults(
            [new ResultToCommit("t", Result(1), "b.png|1"), new ResultToCommit("t", huge, "c.png|1")], DuplicatePolicy.Skip, 0));

        Assert.Equal((depth, bytes), (box.Stats.Depth, box.Stats.Bytes));
        Assert.Single(box.Peek(100));
        Assert.Null(box.FindJournalled("src", "b.png|1")); // the first row of the batch was rolled back with it
        // ... and so was its seq: the next stored result is 2, no gap for what was never stored.
        Assert.Equal(2, box.CommitResult("t", Result(3), "d.png|1", DuplicatePolicy.Skip, 0).Commit.Seq);
    }

    [Fact]
    public void Enqueue_OverMessageCap_DropsOldestResultsButKeepsEvents()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"), maxMessages: 10);
        var ev0 = box.EnqueueEvent("e", Event(0), 0).Stored.MessageId;
        var drops = 0;
        for (var i = 0; i < 25; i++)
        {
            var (_, drop) = box.CommitResult("t", Result(i), null, DuplicatePolicy.Skip, 0);
            drops += drop?.Dropped ?? 0;
        }

        var rows = box.Peek(100);
        Assert.Equal(10, rows.Count);
        Assert.Equal(16, drops);
        Assert.Equal(16, box.Stats.DroppedByCap);
        Assert.Equal(ev0, rows[0].MessageId);
        // The cap drops stored results; their numbers stay taken, so a consumer sees the gap (seq 1..16 lost).
        Assert.Equal(Enumerable.Range(17, 9).Select(i => (long)i), rows.Skip(1).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).Seq));
    }

    [Fact]
    public void Enqueue_OverByteCap_StaysUnderBytes()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"), maxMessages: 100_000, maxBytes: 64 * 1024);
        var ids = Enumerable.Range(0, 40).Select(i => box.EnqueueEvent("t", Event(i, size: 5000), 0).Stored.MessageId).ToList();

        Assert.True(box.Stats.Bytes <= 64 * 1024);
        Assert.InRange(box.Depth, 10, 13); // about 5.2 kB each
        Assert.Equal(ids.TakeLast((int)box.Depth), box.Peek(100).Select(r => r.MessageId)); // the newest ones stay
        Assert.Throws<ArgumentException>(() => box.EnqueueEvent("t", Event(99, size: 70_000), 0));
    }

    [Fact]
    public void Open_CorruptFile_MovesItAsideAndStartsEmpty()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        File.WriteAllText(path, "this is not a database, it is a file some tool half-wrote ....................................................");
        using var box = Open(path, 100, 1_000_000);
        Assert.NotNull(box.Recovery);
        Assert.Equal(0, box.Depth);
        Assert.Single(Directory.GetFiles(dir.Path, "o.db.corrupt-*"));
        box.EnqueueEvent("t", Event(0), 0);
        Assert.Equal(1, box.Depth);
    }

    [Fact]
    public void PruneJournal_OldEntries_AreForgotten()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"), 100, 1_000_000);
        box.CommitResult("t", Result(1), "k1", DuplicatePolicy.Skip, 0);
        Assert.Equal(0, box.PruneJournal(DateTimeOffset.UtcNow.AddMinutes(-1)));
        Assert.Equal(1, box.PruneJournal(DateTimeOffset.UtcNow.AddMinutes(1)));
        Assert.Null(box.FindJournalled("src", "k1"));
    }

    [Fact]
    public void CommitResults_TwoSourcesInterleaved_IdentityAssignedInTheCommitSeqPerSourceWithoutGapsIdsIncreasing()
    {
        using var dir = new TempFolder("outbox");
        using var box = Open(dir.File("o.db"));
        var commits = new List<(string Source, JournalCommit Commit)>();
        for (var i = 0; i < 30; i++)
        {
            var source = i % 3 == 0 ? "cam" : "folder";
            var batch = box.CommitResults([new ResultToCommit("t", Result(i, source), $"k{i}"), new ResultToCommit("t", Result(i, source), $"k{i}")],
                DuplicatePolicy.Skip, 0).Commits;
            Assert.Equal(CommitStatus.DuplicateSkipped, batch[1].Status); // a duplicate takes no number
            commits.Add((source, batch[0]));
        }

        foreach (var group in commits.GroupBy(c => c.Source))
        {
            Assert.Equal(Enumerable.Range(1, group.Count()).Select(i => (long)i), group.Select(c => c.Commit.Seq));
        }

        var stored = box.Peek(100).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload)).ToList();
        Assert.Equal(commits.Select(c => c.Commit.MessageId), stored.Select(m => m.MessageId));
        Assert.Equal(commits.Select(c => c.Commit.Seq), stored.Select(m => m.Seq));
        Assert.All(stored, m => Assert.Equal(Session, m.Session));
        Assert.All(stored, m => Contract.ResultMessageTests.AssertUuidV7(m.MessageId));
        Assert.Equal(stored.Select(m => m.MessageId).Order(StringComparer.Ordinal), stored.Select(m => m.MessageId));
    }

    [Fact]
    public void Reopen_SameSessionContinuesSeqNewSessionStartsAtOneAndIdsKeepIncreasingWhenTheClockStepsBack()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        var clock = new SettableTime(new DateTimeOffset(2026, 12, 2, 16, 0, 0, TimeSpan.Zero));
        string last;
        using (var box = Open(path, time: clock))
        {
            box.CommitResult("t", Result(0), "a", DuplicatePolicy.Skip, 0);
            last = box.CommitResult("t", Result(1), "b", DuplicatePolicy.Skip, 0).Commit.MessageId;
        }

        clock.Now -= TimeSpan.FromHours(1); // NTP stepped the clock back while the daemon was down
        using (var again = Open(path, time: clock))
        {
            var third = again.CommitResult("t", Result(2), "c", DuplicatePolicy.Skip, 0).Commit;
            Assert.Equal(3, third.Seq);
            Assert.True(string.CompareOrdinal(last, third.MessageId) < 0, $"{third.MessageId} does not follow {last}");
            last = third.MessageId;
        }

        using var next = Open(path, session: "01a21a6f0e157cdc9baacfb57d28157c", time: clock);
        var first = next.CommitResult("t", Result(3), "d", DuplicatePolicy.Skip, 0).Commit;
        Assert.Equal(1, first.Seq);
        Assert.True(string.CompareOrdinal(last, first.MessageId) < 0);
        Assert.Equal(4, next.Depth); // the earlier session's rows wait with their own identity
        Assert.Equal([Session, Session, Session, "01a21a6f0e157cdc9baacfb57d28157c"],
            next.Peek(10).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).Session));
    }

    private sealed class SettableTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
