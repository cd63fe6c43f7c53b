using System.Text;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Outbox;

public sealed class SqliteOutboxTests
{
    private static ResultMessage Result(int i, string source = "src") =>
        ResultMessage.From(Samples.Prediction(i), new ResultOrigin("s1", "n", source, i, DateTimeOffset.UtcNow), Samples.Image(i),
            Samples.Model, new StageLatency(1, 1, 1, 3));

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void Peek_AfterEnqueueAndRemove_ReturnsRemainingInInsertionOrder()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 1000, 10_000_000);
        var seqs = Enumerable.Range(0, 20).Select(i => box.Enqueue("event", "t", $"id{i}", "s", 0, Bytes($"{{\"i\":{i}}}")).Seq).ToList();
        Assert.Equal(seqs.Order().ToList(), seqs);
        Assert.True(box.Remove(seqs[0]));
        Assert.False(box.Remove(seqs[0]));
        box.Remove(seqs[5]);

        var rows = box.Peek(100);
        Assert.Equal(18, rows.Count);
        Assert.Equal(Enumerable.Range(1, 19).Where(i => i != 5).Select(i => $"id{i}"), rows.Select(r => r.MessageId));
        Assert.Equal(18, box.Stats.Depth);
        Assert.Equal(rows.Sum(r => (long)r.Payload.Length), box.Stats.Bytes);
    }

    [Fact]
    public void Reopen_AbandonedWithoutDispose_KeepsEveryCommittedRowAndJournal()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        var box = new SqliteOutbox(path, 1000, 10_000_000);
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

        using var fromCrash = new SqliteOutbox(crashCopy, 1000, 10_000_000);
        Assert.Equal(30, fromCrash.Depth);
        Assert.Equal(30, fromCrash.JournalCount);
        Assert.NotNull(fromCrash.FindJournalled("src", "file-29"));
        Assert.Null(fromCrash.Recovery);

        // And the abandoned instance itself: a second open of the live file sees the same rows.
        using var second = new SqliteOutbox(path, 1000, 10_000_000);
        Assert.Equal(30, second.Depth);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), second.Peek(100).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).Seq));
        GC.KeepAlive(box);
    }

    [Fact]
    public void CommitResult_SameFileKeyTwice_SkipsOrMarksDuplicate()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 1000, 10_000_000);
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
        using (var box = new SqliteOutbox(path, 1000, 10_000_000))
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
            Assert.True(commits[0].OutboxSeq < commits[2].OutboxSeq && commits[2].OutboxSeq < commits[4].OutboxSeq);
            Assert.Equal(4, box.Stats.Depth);
            Assert.Equal(box.Peek(100).Sum(r => (long)r.Payload.Length), box.Stats.Bytes);
        }

        // Durable: a new process sees the rows and the journal.
        using var again = new SqliteOutbox(path, 1000, 10_000_000);
        Assert.Equal(4, again.Stats.Depth);
        Assert.NotNull(again.FindJournalled("src", "b.png|1"));
    }

    [Fact]
    public void CommitResults_OneRowCannotBeStored_NoneOfTheBatchIsStoredAndCountsStay()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 1000, 8 * 1024);
        box.CommitResult("t", Result(0), "a.png|1", DuplicatePolicy.Skip, 0);
        var (depth, bytes) = (box.Stats.Depth, box.Stats.Bytes);
        var huge = Result(2) with { Model = Samples.Model with { Id = new string('x', 10_000) } }; // over the 8 KiB cap
        Assert.Throws<ArgumentException>(() => box.CommitResults(
            [new ResultToCommit("t", Result(1), "b.png|1"), new ResultToCommit("t", huge, "c.png|1")], DuplicatePolicy.Skip, 0));

        Assert.Equal((depth, bytes), (box.Stats.Depth, box.Stats.Bytes));
        Assert.Single(box.Peek(100));
        Assert.Null(box.FindJournalled("src", "b.png|1")); // the first row of the batch was rolled back with it
    }

    [Fact]
    public void Enqueue_OverMessageCap_DropsOldestResultsButKeepsEvents()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 10, 10_000_000);
        box.Enqueue(SqliteOutbox.KindEvent, "e", "ev0", "s", 0, Bytes("{}"));
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
        Assert.Equal("ev0", rows[0].MessageId);
        Assert.Equal(Enumerable.Range(16, 9).Select(i => (long)i), rows.Skip(1).Select(r => MessageJson.Deserialize<ResultMessage>(r.Payload).Seq));
    }

    [Fact]
    public void Enqueue_OverByteCap_StaysUnderBytes()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 100_000, 64 * 1024);
        var payload = new byte[5000];
        for (var i = 0; i < 40; i++)
        {
            box.Enqueue(SqliteOutbox.KindResult, "t", $"r{i}", "s", 0, payload);
        }

        Assert.True(box.Stats.Bytes <= 64 * 1024);
        Assert.Equal(13, box.Depth);
        Assert.Equal("r27", box.Peek(1)[0].MessageId);
        Assert.Throws<ArgumentException>(() => box.Enqueue(SqliteOutbox.KindResult, "t", "big", "s", 0, new byte[70_000]));
    }

    [Fact]
    public void Open_CorruptFile_MovesItAsideAndStartsEmpty()
    {
        using var dir = new TempFolder("outbox");
        var path = dir.File("o.db");
        File.WriteAllText(path, "this is not a database, it is a file some tool half-wrote ....................................................");
        using var box = new SqliteOutbox(path, 100, 1_000_000);
        Assert.NotNull(box.Recovery);
        Assert.Equal(0, box.Depth);
        Assert.Single(Directory.GetFiles(dir.Path, "o.db.corrupt-*"));
        box.Enqueue("event", "t", "x", "s", 0, Bytes("{}"));
        Assert.Equal(1, box.Depth);
    }

    [Fact]
    public void PruneJournal_OldEntries_AreForgotten()
    {
        using var dir = new TempFolder("outbox");
        using var box = new SqliteOutbox(dir.File("o.db"), 100, 1_000_000);
        box.CommitResult("t", Result(1), "k1", DuplicatePolicy.Skip, 0);
        Assert.Equal(0, box.PruneJournal(DateTimeOffset.UtcNow.AddMinutes(-1)));
        Assert.Equal(1, box.PruneJournal(DateTimeOffset.UtcNow.AddMinutes(1)));
        Assert.Null(box.FindJournalled("src", "k1"));
    }
}
