using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace FmaEdge.Daemon.Tests.Pipeline;

/// <summary>The publish stage hands results that wait together to the sink in one batch, and handles a batch that was
/// only partly stored: the stored ones are published and moved, the rest stay in the folder and are retried.</summary>
public sealed class GroupCommitTests
{
    [Fact]
    public async Task Commit_BacklogOfFiles_CommittedInBatchesAndAPartlyStoredBatchLosesNothing()
    {
        using var tmp = new TempFolder("groupcommit");
        var sink = new BatchRecordingSink(new JsonFolderResultSink(Path.Combine(tmp.Path, "results"))) { FailAfterInFirstBigBatch = 2 };
        await using var d = await DaemonHarness.StartAsync(tmp.Path, null, s => s.AddSingleton<IResultSink>(sink));
        var images = TestPaths.SampleImages("val", perLeaf: 2).Take(40).ToList();
        var names = d.Drop(images);

        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 40 && Directory.GetFiles(d.Inbox).Length == 0 && d.Pipeline.InFlight == 0,
            "every image published and moved", 60_000);
        lock (sink.Batches)
        {
            Assert.True(sink.Batches.Max() > 1, $"a backlog is committed in batches (sizes: {string.Join(",", sink.Batches)})");
            Assert.True(sink.Batches.All(b => b <= 64), "at most 64 per batch");
        }

        Assert.True(sink.PartialFailures == 1, "one batch was stored only in part");
        Assert.True(d.Pipeline.Abandoned > 0, "the unstored rest was handed back");
        Assert.Equal(names.Order(), d.Results().Select(r => r.GetProperty("imageId").GetString()).Order());
        Assert.Equal(40, d.Results().Select(r => r.GetProperty("sha256").GetString()).Distinct().Count());
        Assert.Equal(40, Directory.GetFiles(d.Done).Length);
        Assert.Empty(d.Events("duplicate"));
    }

    /// <summary>Commits one by one into a real folder sink, recording batch sizes; the first batch of more than
    /// <see cref="FailAfterInFirstBigBatch"/> results stores only that many and reports a failure for the rest.</summary>
    private sealed class BatchRecordingSink(JsonFolderResultSink inner) : FolderSinkWrapper(inner), IResultSink
    {
        public List<int> Batches { get; } = [];

        public int FailAfterInFirstBigBatch { get; init; } = int.MaxValue;

        public int PartialFailures;

        // Re-implements IResultSink's batch commit (the base forwards only the one-by-one commit).
        public async ValueTask<BatchCommit> CommitResultsAsync(IReadOnlyList<ImageResult> results, CancellationToken cancellationToken)
        {
            lock (Batches)
            {
                Batches.Add(results.Count);
            }

            var stored = new List<CommitResult>();
            var failHere = results.Count > FailAfterInFirstBigBatch && Interlocked.CompareExchange(ref PartialFailures, 1, 0) == 0;
            foreach (var r in results)
            {
                if (failHere && stored.Count == FailAfterInFirstBigBatch)
                {
                    return new BatchCommit(stored, new IOException("No space left on device"));
                }

                stored.Add(await Inner.CommitResultAsync(r, cancellationToken));
            }

            return new BatchCommit(stored, null);
        }
    }
}
