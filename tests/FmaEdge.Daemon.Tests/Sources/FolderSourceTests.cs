using System.Collections.Concurrent;
using System.Security.Cryptography;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Sources;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace FmaEdge.Daemon.Tests.Sources;

public sealed class FolderSourceTests
{
    [Fact]
    public async Task Run_PreexistingAndNewFiles_EachPublishedOnceAndMovedToDone()
    {
        using var tmp = new TempFolder("folder");
        var images = TestPaths.SampleImages("val", perLeaf: 1);
        Directory.CreateDirectory(Path.Combine(tmp.Path, "inbox"));
        foreach (var img in images.Take(5))
        {
            File.Copy(img, Path.Combine(tmp.Path, "inbox", "pre-" + Path.GetFileName(img)));
        }

        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        d.Drop(images.Skip(5).Take(5), "new-");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count >= 10 && d.Pipeline.InFlight == 0, "10 results");
        await d.WaitForRescansAsync(); // still nothing reported twice

        var results = d.Results();
        Assert.Equal(10, results.Count);
        var ids = results.Select(r => r.GetProperty("imageId").GetString()!).Order().ToList();
        var expected = images.Take(5).Select(i => "pre-" + Path.GetFileName(i)).Concat(images.Skip(5).Take(5).Select(i => "new-" + Path.GetFileName(i))).Order().ToList();
        Assert.Equal(expected, ids);
        Assert.Equal(expected, Directory.GetFiles(d.Done).Select(f => Path.GetFileName(f)).Order().ToList());
        Assert.Empty(Directory.GetFiles(d.Inbox));
        foreach (var r in results)
        {
            Assert.Equal(3, r.GetProperty("prediction").GetProperty("levels").GetArrayLength());
            var original = images.First(i => r.GetProperty("imageId").GetString()!.EndsWith(Path.GetFileName(i), StringComparison.Ordinal));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(original))), r.GetProperty("sha256").GetString());
        }
    }

    [Fact]
    public async Task Run_FileWrittenSlowly_TakenOnlyOnceStableForStableMs()
    {
        // The source's clock is fake, so "stable for 200 ms" means 200 ms of the test's time whatever the machine's load:
        // between pieces the test waits 300 ms of real time (a source on the system clock would take the partial file)
        // but moves the source's clock only 100 ms.
        using var tmp = new TempFolder("slow");
        var clock = new FakeTimeProvider();
        var options = new SourceOptions { Id = "line1", Path = Path.Combine(tmp.Path, "inbox"), StableMs = 200, RescanSeconds = 1 };
        var taken = new RecordingInput();
        await using var source = new FolderSource(options, NullLogger.Instance, sink: null, clock);
        await source.StartAsync(taken, CancellationToken.None);

        var image = TestPaths.SampleImages("val", perLeaf: 1).OrderByDescending(f => new FileInfo(f).Length).First();
        var bytes = await File.ReadAllBytesAsync(image);
        var target = Path.Combine(options.Path, "slow.png");
        await using (var fs = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite))
        {
            var chunk = (bytes.Length + 7) / 8;
            for (var off = 0; off < bytes.Length; off += chunk)
            {
                await fs.WriteAsync(bytes.AsMemory(off, Math.Min(chunk, bytes.Length - off)));
                await fs.FlushAsync();
                await Task.Delay(300); // real time: the source's loop looks at this piece several times
                Assert.Empty(taken.Items); // never taken while growing
                clock.Advance(TimeSpan.FromMilliseconds(100));
            }
        }

        // Complete now: taken once its size and time stamp stayed unchanged for 200 ms of the source's clock.
        await DaemonHarness.WaitUntilAsync(() =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(50));
            return !taken.Items.IsEmpty;
        }, "the complete file to be taken");
        var (work, length) = Assert.Single(taken.Items);
        Assert.Equal(bytes.Length, length); // what the pipeline would have read was the whole file
        Assert.Equal("slow.png", work.ImageId);

        await source.CompleteAsync(work, new WorkOutcome(WorkStatus.Published, MessageId: "m1"), CancellationToken.None);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(source.DoneDir, "slow.png")));

        // Two rescans later (the second starts after everything the first found was handed over): not taken again.
        var rescans = source.Rescans;
        await DaemonHarness.WaitUntilAsync(() =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(500));
            return source.Rescans >= rescans + 2;
        }, "two more rescans");
        Assert.Single(taken.Items);
    }

    [Fact]
    public async Task RenameMode_WriterWritesPartThenRenames_OnlyTheRenamedImageIsTaken()
    {
        // Completion "rename": a file is complete the moment it appears under an image name, so the writer's temporary
        // "x.png.part" must never be a candidate (it once was, through the watcher's events: read half-written, set aside
        // as bad, and the writer's rename then failed).
        using var tmp = new TempFolder("rename");
        var options = new SourceOptions { Id = "line1", Path = Path.Combine(tmp.Path, "inbox"), Completion = FolderCompletion.Rename, RescanSeconds = 1 };
        var taken = new RecordingInput();
        await using var source = new FolderSource(options, NullLogger.Instance, sink: null);
        await source.StartAsync(taken, CancellationToken.None);

        var bytes = await File.ReadAllBytesAsync(TestPaths.SampleImages("val", perLeaf: 1)[0]);
        var part = Path.Combine(options.Path, "x.png.part");
        await using (var fs = new FileStream(part, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite))
        {
            await fs.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
            await fs.FlushAsync();
            var rescans = source.Rescans;
            await DaemonHarness.WaitUntilAsync(() => source.Rescans >= rescans + 2, "two rescans while the part file is half written");
            Assert.Empty(taken.Items);
            await fs.WriteAsync(bytes.AsMemory(bytes.Length / 2));
        }

        File.Move(part, Path.Combine(options.Path, "x.png"));
        await DaemonHarness.WaitUntilAsync(() => !taken.Items.IsEmpty, "the renamed image to be taken");
        var (work, length) = Assert.Single(taken.Items);
        Assert.Equal("x.png", work.ImageId);
        Assert.Equal(bytes.Length, length);
    }

    /// <summary>The pipeline's input as the source sees it: records each work item with its file's length at hand-over.</summary>
    private sealed class RecordingInput : IImageSink
    {
        public ConcurrentQueue<(ImageWork Work, long Length)> Items { get; } = new();

        public ValueTask WriteAsync(ImageWork work, CancellationToken cancellationToken)
        {
            Items.Enqueue((work, new FileInfo(work.FilePath!).Length));
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task Run_FilesArrivingOneByOne_PublishedInArrivalOrder()
    {
        using var tmp = new TempFolder("order");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(12).ToList();
        var dropped = new List<string>();
        for (var i = 0; i < images.Count; i++)
        {
            // Names sort differently from arrival, so order by name would be caught.
            dropped.AddRange(d.Drop([images[i]], $"{(images.Count - i):D2}-"));
            await Task.Delay(60);
        }

        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == images.Count, "all results");
        var results = d.Results();
        Assert.Equal(dropped, results.Select(r => r.GetProperty("imageId").GetString()));
        var seqs = results.Select(r => r.GetProperty("sequence").GetInt64()).ToList();
        Assert.Equal(seqs.Order().ToList(), seqs);
    }

    [Fact]
    public async Task Restart_DoneAndResentFiles_NotReprocessedAndResentMarkedDuplicate()
    {
        using var tmp = new TempFolder("restart");
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(5).ToList();
        await using (var first = await DaemonHarness.StartAsync(tmp.Path))
        {
            first.Drop(images.Take(4));
            await DaemonHarness.WaitUntilAsync(() => first.Results().Count == 4 && first.Pipeline.InFlight == 0, "4 results");
        }

        // Re-sent: two images already published come back (one under a new name), plus one new image.
        var inbox = Path.Combine(tmp.Path, "inbox");
        File.Copy(Path.Combine(inbox, "done", Path.GetFileName(images[0])), Path.Combine(inbox, Path.GetFileName(images[0])));
        File.Copy(images[1], Path.Combine(inbox, "renamed-copy.png"));
        File.Copy(images[4], Path.Combine(inbox, Path.GetFileName(images[4])));

        await using var second = await DaemonHarness.StartAsync(tmp.Path);
        await DaemonHarness.WaitUntilAsync(() => second.Pipeline.Published + second.Pipeline.Duplicates == 3 && second.Pipeline.InFlight == 0, "3 outcomes");
        Assert.Equal(5, second.Results().Count); // 4 before + 1 new: nothing published twice
        Assert.Equal(1, second.Pipeline.Published);
        var dups = second.Events("duplicate");
        Assert.Equal(2, dups.Count);
        Assert.Contains(dups, e => e.GetProperty("subject").GetString()!.EndsWith("renamed-copy.png", StringComparison.Ordinal));
        Assert.All(dups, e => Assert.NotEqual("", e.GetProperty("data").GetProperty("original_message_id").GetString()));
        Assert.Empty(Directory.GetFiles(inbox));
        Assert.Equal(7, Directory.GetFiles(Path.Combine(inbox, "done")).Length);
    }

    [Fact]
    public async Task LeaveMode_Restart_DoesNotReprocessOrReport()
    {
        using var tmp = new TempFolder("leave");
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(4).ToList();
        void Leave(Dictionary<string, string?> s) => s["FmaEdge:Sources:0:After"] = "leave";
        await using (var first = await DaemonHarness.StartAsync(tmp.Path, Leave))
        {
            first.Drop(images);
            await DaemonHarness.WaitUntilAsync(() => first.Results().Count == 4 && first.Pipeline.InFlight == 0, "4 results");
            await first.WaitForRescansAsync(); // rescans while running must not pick them up again either
            Assert.Equal(4, first.Results().Count);
        }

        await using var second = await DaemonHarness.StartAsync(tmp.Path, Leave);
        await DaemonHarness.WaitUntilAsync(() => second.Pipeline.Skipped == 4, "4 skipped");
        await second.WaitForRescansAsync();
        Assert.Equal(4, second.Results().Count);
        Assert.Equal(0, second.Pipeline.Published);
        Assert.Equal(4, second.Pipeline.Skipped);
        Assert.Empty(second.Events("duplicate"));
        Assert.Equal(4, Directory.GetFiles(second.Inbox).Length);
    }

    [Fact]
    public async Task LeaveMode_FilesRemovedByOthers_ForgottenAtRescanAndANewFileUnderAnOldNameIsClassified()
    {
        using var tmp = new TempFolder("leave-prune");
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s => s["FmaEdge:Sources:0:After"] = "leave");
        var source = d.Folder;
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(5).ToList();
        var names = d.Drop(images.Take(4));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 4 && d.Pipeline.InFlight == 0, "4 results");
        Assert.Equal(4, source.HandledCount);

        // Something else (an archiver) takes two of them away: the source forgets them at its next rescan (each 1 s here),
        // instead of remembering every file it ever saw.
        File.Delete(Path.Combine(d.Inbox, names[0]));
        File.Delete(Path.Combine(d.Inbox, names[1]));
        await DaemonHarness.WaitUntilAsync(() => source.HandledCount == 2, "two handled files forgotten", 10_000);

        // The two still there are not classified again; a new image arriving under a forgotten name is.
        File.Copy(images[4], Path.Combine(d.Inbox, names[0] + ".part"));
        File.Move(Path.Combine(d.Inbox, names[0] + ".part"), Path.Combine(d.Inbox, names[0]));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 5 && d.Pipeline.InFlight == 0, "the new file's result");
        await d.WaitForRescansAsync(); // nothing else
        Assert.Equal(5, d.Results().Count);
        Assert.Equal(3, source.HandledCount);
    }

    [Fact]
    public async Task Stop_MidStream_DrainsInFlightAndLosesNothing()
    {
        using var tmp = new TempFolder("drain");
        var images = TestPaths.SampleImages("val", perLeaf: 2).Take(30).ToList();
        await using (var first = await DaemonHarness.StartAsync(tmp.Path))
        {
            first.Drop(images);
            await DaemonHarness.WaitUntilAsync(() => first.Results().Count >= 3, "first results");
            await first.StopAsync(); // SIGTERM path
            Assert.Equal(0, first.Pipeline.InFlight);
            var done = Directory.GetFiles(first.Done).Length;
            Assert.Equal(first.Results().Count, done); // every committed image moved, every moved image committed
            Assert.Equal(30, done + Directory.GetFiles(first.Inbox).Length);
        }

        await using var second = await DaemonHarness.StartAsync(tmp.Path);
        await DaemonHarness.WaitUntilAsync(() => second.Results().Count == 30 && second.Pipeline.InFlight == 0, "all 30 results after restart");
        Assert.Empty(second.Events("duplicate"));
        Assert.Equal(30, second.Results().Select(r => r.GetProperty("sha256").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task Run_FolderVanishesAndReturns_ReportedThenFilesProcessed()
    {
        using var tmp = new TempFolder("vanish");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        var away = Path.Combine(tmp.Path, "inbox-away");
        Directory.Move(d.Inbox, away); // an unmounted share looks like this

        await DaemonHarness.WaitUntilAsync(() => d.Status.Snapshot().Sources[0].State == "unavailable", "the source to notice");
        var snap = d.Status.Snapshot();
        Assert.Equal("degraded", snap.Health);
        Assert.Contains(snap.Problems, p => p.Contains("line1", StringComparison.Ordinal) && p.Contains("missing", StringComparison.Ordinal));
        await DaemonHarness.WaitUntilAsync(() => d.Events("source_down").Count == 1, "the source-down event");
        Assert.False(Directory.Exists(d.Inbox)); // not recreated underneath the mount point

        foreach (var img in TestPaths.SampleImages("val", perLeaf: 1).Take(3))
        {
            File.Copy(img, Path.Combine(away, Path.GetFileName(img)));
        }

        Directory.Move(away, d.Inbox);
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 3 && d.Pipeline.InFlight == 0, "the files once the folder is back");
        await DaemonHarness.WaitUntilAsync(() => d.Status.Snapshot().Sources[0].State == "watching", "the source back to watching");
        await DaemonHarness.WaitUntilAsync(() => d.Events("source_up").Count == 1, "the source-up event");

        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Skip(3).Take(1)); // the renewed watcher sees new files
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 4, "a file dropped after the return");
    }
}
