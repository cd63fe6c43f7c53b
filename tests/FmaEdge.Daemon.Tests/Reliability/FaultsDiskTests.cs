using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>Full disks, for real: a small tmpfs filled until the kernel answers ENOSPC, under the outbox (state folder) or
/// under done/ and failed/. The whole in-process daemon, a real mosquitto, the trained model, real images.</summary>
public sealed class FaultsDiskTests : IDisposable
{
    private readonly TempFolder _tmp = new("faults-disk");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Run_OutboxDiskFull_ResultsRefusedFilesKeptDegradedThenAllPublishedOnceWhenSpaceReturns()
    {
        using var fs = SmallTmpfs.Mount(Path.Combine(_tmp.Path, "statefs"), sizeMiB: 16);
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, s =>
        {
            s["FmaEdge:Paths:StateDir"] = fs.Path; // the outbox and journal live here
            s["FmaEdge:Health:DiskFloorMiB"] = "1";
        }));
        var images = TestPaths.SampleImages("val", perLeaf: 2).Take(40).ToList();
        var names = new List<string>(d.Drop(images.Take(5), "a-"));
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == 5, "5 results before the disk fills");

        fs.Fill();
        names.AddRange(d.Drop(images.Skip(5), "b-"));

        // SQLite may still reuse space inside its write-ahead log for a few commits; then every commit fails.
        var (code, full) = await FaultRig.WaitForStatusAsync(d.Socket,
            (_, s) => FaultRig.Problems(s).Contains("results cannot be stored", StringComparison.Ordinal), "commits refused", 60_000);
        Assert.Equal(1, code);
        Assert.Equal("degraded", full.GetProperty("health").GetString());
        await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => FaultRig.Problems(s).Contains("disk low", StringComparison.Ordinal), "disk low reported");
        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.InFlight == 0 && d.Pipeline.Abandoned > 0, "refused images handed back");
        // The floor is told although the outbox cannot store events: directly sent events and the retained status.
        await DaemonHarness.WaitUntilAsync(() => floor.Events("store_failed").Count > 0, "a store_failed event on the floor");
        await DaemonHarness.WaitUntilAsync(() => floor.Events("disk_low").Count > 0, "a disk_low event on the floor");
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.Json.GetProperty("health").GetString() == "degraded",
            "the retained status says degraded");
        // Nothing accepted is lost: every image is either published or still in the inbox (never moved without a result).
        // (Refused images are retried at every rescan and SQLite sometimes finds room, so files keep moving meanwhile:
        // each listing is taken before the facts it is checked against.)
        var inbox = Directory.GetFiles(d.Inbox).Select(Path.GetFileName).ToHashSet();
        Assert.True(inbox.Count > 0, "some images were refused");
        Assert.All(names, n => Assert.True(inbox.Contains(n) || File.Exists(Path.Combine(d.Done, n)), $"{n} neither in the inbox nor done"));
        await DaemonHarness.WaitUntilAsync(() =>
        {
            var doneNow = Directory.GetFiles(d.Done).Select(Path.GetFileName).ToList();
            var published = floor.Results.Select(r => r.Json.GetProperty("image").GetProperty("id").GetString()).ToHashSet();
            return doneNow.All(published.Contains) || d.Status.Snapshot().Output.OutboxDepth > 0;
        }, "every file in done/ has a stored result (published, or waiting in the outbox)");

        fs.Free();
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == names.Count, "every image published once space returned", 60_000);
        await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(d.Inbox).Length == 0, "inbox empty");
        var (okCode, ok) = await FaultRig.WaitForStatusAsync(d.Socket, (c, _) => c == 0, "healthy once space returned");
        Assert.Equal(0, okCode);
        Assert.Equal(names.Count, ok.GetProperty("counts").GetProperty("processed").GetInt64());
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses[^1].Json.GetProperty("health").GetString() == "healthy", "the retained status healthy again");
        await Task.Delay(500);
        FaultRig.AssertEachImageOnce(floor.Results, names);
        Assert.Equal(names.Count, Directory.GetFiles(d.Done).Length);
        Assert.Empty(floor.Events("duplicate"));
        // The link itself never broke: a delete the full disk refused must not pass for a lost connection (that used to
        // reconnect and resend the same batch in a loop).
        Assert.Single(floor.Events("broker_connected"));
    }

    [Fact]
    public async Task Run_DoneAndFailedDiskFull_FilesKeptReportedAndMovedWhenSpaceReturns()
    {
        using var fs = SmallTmpfs.Mount(Path.Combine(_tmp.Path, "donefs"), sizeMiB: 4);
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        var done = Path.Combine(fs.Path, "done");
        var failed = Path.Combine(fs.Path, "failed");
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, s =>
        {
            s["FmaEdge:Sources:0:DoneDir"] = done;
            s["FmaEdge:Sources:0:FailedDir"] = failed;
            s["FmaEdge:Health:DiskFloorMiB"] = "0"; // only the move failure itself may degrade the node here
        }));
        fs.Fill();

        var names = d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(8)).ToList();
        // Two bad inputs, which belong in failed/ with their reasons.
        await File.WriteAllTextAsync(Path.Combine(d.Inbox, "notes.png.part"), "this is not an image");
        File.Move(Path.Combine(d.Inbox, "notes.png.part"), Path.Combine(d.Inbox, "notes.png"));
        await File.WriteAllBytesAsync(Path.Combine(d.Inbox, "empty.png.part"), []);
        File.Move(Path.Combine(d.Inbox, "empty.png.part"), Path.Combine(d.Inbox, "empty.png"));

        // Results are stored and published; the files cannot leave the inbox.
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == names.Count && floor.Events("bad_image").Count == 2, "results and bad-image events");
        var (code, stuck) = await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => FaultRig.Problems(s).Contains("cannot move", StringComparison.Ordinal),
            "move failure in status");
        Assert.Equal(1, code);
        Assert.Contains("result stored; retried", FaultRig.Problems(stuck), StringComparison.Ordinal);
        Assert.Contains(stuck.GetProperty("disks").EnumerateArray(), x => x.GetProperty("path").GetString() == done); // done/ on its own file system
        await DaemonHarness.WaitUntilAsync(() => floor.Events("move_failed").Count > 0, "a move_failed event on the floor");
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.Json.GetProperty("health").GetString() == "degraded", "retained status degraded");
        Assert.Equal(names.Count + 2, Directory.GetFiles(d.Inbox).Length);
        // No partial copies left behind. Polled, not sampled once: every rescan retries the move, and a retry in flight
        // briefly holds a reason file it is about to delete again; a left-over copy would stay and fail the wait.
        await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(done).Length == 0 && Directory.GetFiles(failed).Length == 0,
            "done/ and failed/ empty while the disk is full (no partial copies)");

        // Several rescans later: still not reprocessed (no second result, no duplicate event).
        await Task.Delay(2500);
        Assert.Empty(floor.Events("duplicate"));
        Assert.Equal(names.Count, floor.Results.Select(r => r.Json.GetProperty("message_id").GetString()).Distinct().Count()); // re-sent copies (at-least-once) share the id

        fs.Free();
        await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(d.Inbox).Length == 0, "the files moved once space returned");
        Assert.Equal(names.Order(), Directory.GetFiles(done).Select(f => Path.GetFileName(f)).Order());
        Assert.Equal(new[] { "empty.png", "empty.png.reason.txt", "notes.png", "notes.png.reason.txt" },
            Directory.GetFiles(failed).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal));
        await FaultRig.WaitForStatusAsync(d.Socket, (c, _) => c == 0, "healthy once the files moved");
        await DaemonHarness.WaitUntilAsync(() => floor.Events("move_recovered").Count > 0, "a move_recovered event");
        await Task.Delay(500);
        FaultRig.AssertEachImageOnce(floor.Results, names);
        Assert.Empty(floor.Events("duplicate"));
        Assert.Single(floor.Events("move_failed")); // one per episode, not one per file or rescan
    }
}
