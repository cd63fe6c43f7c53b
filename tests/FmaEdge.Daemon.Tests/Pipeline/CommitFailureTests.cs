using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace FmaEdge.Daemon.Tests.Pipeline;

public sealed class CommitFailureTests
{
    [Fact]
    public async Task Commit_OutputFailsThenRecovers_FilesKeptRetriedAndPublishedOnce()
    {
        using var tmp = new TempFolder("commitfail");
        var sink = new FlakySink(new JsonFolderResultSink(Path.Combine(tmp.Path, "results"))) { Failing = true };
        await using var d = await DaemonHarness.StartAsync(tmp.Path, null, s => s.AddSingleton<IResultSink>(sink));
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(3).ToList();
        d.Drop(images);

        await DaemonHarness.WaitUntilAsync(() => sink.FailedCommits >= 3 && d.Pipeline.InFlight == 0, "failed commits");
        Assert.Empty(d.Results());
        Assert.Equal(3, Directory.GetFiles(d.Inbox).Length); // not moved, not lost
        Assert.Empty(Directory.GetFiles(d.Done));
        var snap = d.Status.Snapshot();
        Assert.Equal("degraded", snap.Health);
        Assert.Contains(snap.Problems, p => p.Contains("No space left on device", StringComparison.Ordinal));

        sink.Failing = false; // space freed: the periodic rescan retries the files
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 3 && Directory.GetFiles(d.Inbox).Length == 0, "results after recovery");
        Assert.Equal(3, Directory.GetFiles(d.Done).Length);
        Assert.Empty(d.Events("duplicate"));
    }
}
