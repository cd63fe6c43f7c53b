using System.Diagnostics;
using System.Globalization;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>The real <c>fma-edge run</c> process stopped mid-batch, by SIGTERM (systemd stop) and by SIGKILL (a crash),
/// then started again, against a real mosquitto, with the trained model and real images. (These extend the earlier
/// SIGTERM and kill -9 tests with what the floor and status see.)</summary>
public sealed class FaultsProcessTests : IDisposable
{
    private readonly TempFolder _tmp = new("faults-proc");

    public void Dispose() => _tmp.Dispose();

    private string Socket => Path.Combine(_tmp.Path, "run", "status.sock");

    [Fact]
    public async Task Run_SigtermMidBatch_DrainsPublishesOfflineStoppedAndRestartPublishesTheRestOnce()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        // 1,213 images: enough that a quiet machine cannot finish them all between the third result and the signal (210
        // could, once the shipped model ran at ~500 images/s).
        var images = TestPaths.SampleImages("train", perLeaf: 60).ToList();
        // Small queues, so a SIGTERM finds images both in flight and still waiting in the folder.
        var settings = DaemonHarness.Settings(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, s =>
        {
            s["FmaEdge:Pipeline:InputCapacity"] = "4";
            s["FmaEdge:Pipeline:InferCapacity"] = "4";
            s["FmaEdge:Pipeline:PublishCapacity"] = "4";
        }));
        var (config, inbox) = await ProcessTests.PrepareAsync(_tmp.Path, settings, images);
        var names = images.Select(p => Path.GetFileName(p)).ToList();
        var done = Path.Combine(inbox, "done");

        string sessionA;
        using (var p = ProcessTests.Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages >= 3, "first results", 90_000);
            await p.SignalAsync("TERM");
            await p.WaitForExitAsync(TimeSpan.FromSeconds(45));
            Assert.Equal(0, p.ExitCode);
            sessionA = floor.Results[0].Json.GetProperty("session").GetString()!;
        }

        // Drained: every image taken was finished, its result delivered, its file moved; the rest wait in the inbox.
        var doneA = Directory.GetFiles(done).Select(Path.GetFileName).ToList();
        Assert.True(doneA.Count < images.Count, "stopped mid-stream");
        Assert.Equal(images.Count, doneA.Count + Directory.GetFiles(inbox).Length);
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == doneA.Count, "each finished image's result on the floor", 5_000);
        Assert.Equal(doneA.Order(), floor.Results.Select(r => r.Json.GetProperty("image").GetProperty("id").GetString()).Distinct().Order());
        Assert.Contains(floor.Events("stopping"), e => e.Json.GetProperty("session").GetString() == sessionA);
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.State == "offline", "the retained offline status on the floor", 5_000);
        var offline = floor.Statuses[^1];
        Assert.Equal("stopped", offline.Json.GetProperty("reason").GetString());
        Assert.Equal(sessionA, offline.Json.GetProperty("session").GetString());
        Assert.Equal(2, (await FaultRig.StatusAsync(Socket)).Code); // not running
        Assert.False(File.Exists(Socket));

        using (var p = ProcessTests.Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == images.Count, "the rest after the restart", 90_000);
            var (code, st) = await FaultRig.WaitForStatusAsync(Socket, (c, _) => c == 0, "healthy after the restart");
            Assert.Equal(images.Count - doneA.Count, st.GetProperty("counts").GetProperty("processed").GetInt64());
            Assert.Equal(0, st.GetProperty("counts").GetProperty("duplicates").GetInt64());
            var online = floor.Statuses[^1];
            Assert.Equal("online", online.State);
            Assert.NotEqual(sessionA, online.Json.GetProperty("session").GetString());
            await p.SignalAsync("TERM");
            await p.WaitForExitAsync(TimeSpan.FromSeconds(45));
            Assert.Equal(0, p.ExitCode);
        }

        FaultRig.AssertEachImageOnce(floor.Results, names);
        Assert.Empty(floor.Events("duplicate"));
        Assert.Equal(images.Count, Directory.GetFiles(done).Length);
    }

    [Fact]
    public async Task Run_KilledMidBatch_WillOnFloorAndRestartReportsEveryImageOnceOrMarked()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        // Enough images (1,213) that the stream is still running when the kill lands, even on a quiet machine: 105 could
        // all finish between the fifth result and the kill, and so could 420 once gray images stayed one channel
        // (~450 images/s on 2 cores; the status call before the kill starts a process).
        var images = TestPaths.SampleImages("train", perLeaf: 60).ToList();
        var (config, inbox) = await ProcessTests.PrepareAsync(_tmp.Path, DaemonHarness.Settings(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port)), images);
        var names = images.Select(p => Path.GetFileName(p)).ToList();

        string sessionA;
        using (var first = ProcessTests.Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages >= 5, "results before the kill", 90_000);
            var (code, _) = await FaultRig.StatusAsync(Socket);
            Assert.Equal(0, code);
            first.Kill(); // SIGKILL mid-batch: no drain, no clean-up
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
            sessionA = floor.Results[0].Json.GetProperty("session").GetString()!;
        }

        Assert.True(Directory.GetFiles(inbox).Length > 0, "killed mid-stream");
        // The floor learns it from the broker: the last will (offline, connection_lost) of the dead session.
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.State == "offline", "the last will", 15_000);
        Assert.Equal("connection_lost", floor.Statuses[^1].Json.GetProperty("reason").GetString());
        Assert.Equal(sessionA, floor.Statuses[^1].Json.GetProperty("session").GetString());
        var (down, downJson) = await FaultRig.StatusAsync(Socket);
        Assert.Equal(2, down); // a stale socket file, nobody answering
        Assert.Equal("not-running", downJson.GetProperty("health").GetString());

        using (var second = ProcessTests.Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(inbox).Length == 0, "the rest after the restart", 90_000);
            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == images.Count, "every image on the floor", 30_000);
            var (code, st) = await FaultRig.WaitForStatusAsync(Socket, (c, s) => c == 0 && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() == 0,
                "healthy after the restart");
            Assert.Equal(0, code);
            var counts = st.GetProperty("counts");
            // Files the dead run had committed but not moved are recognised by the journal, not classified again.
            Assert.Equal(floor.Events("duplicate").Count, counts.GetProperty("duplicates").GetInt64());
            Assert.Equal("online", floor.Statuses[^1].State);
            Assert.NotEqual(sessionA, floor.Statuses[^1].Json.GetProperty("session").GetString());
            await Task.Delay(500);
            second.Kill();
            await second.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        FaultRig.AssertEachImageOnce(floor.Results, names);
        // Results of the dead session delivered by the new one are marked historical, with the session that made them.
        var sessions = floor.Results.Select(r => r.Json.GetProperty("session").GetString()).Distinct().ToList();
        Assert.Equal(2, sessions.Count);
        var sessionB = floor.Statuses[^1].Json.GetProperty("session").GetString();
        Assert.All(floor.Results.Where(r => r.Json.GetProperty("session").GetString() == sessionA && r.AtUtc > floor.Statuses.First(s => s.State == "online" &&
            s.Json.GetProperty("session").GetString() == sessionB).AtUtc), r => Assert.True(r.Json.GetProperty("historical").GetBoolean()));
        Assert.All(floor.Events("duplicate"), e => Assert.False(string.IsNullOrEmpty(e.Json.GetProperty("details").GetProperty("original_message_id").GetString())));
        Assert.Empty(Directory.GetFiles(Path.Combine(inbox, "failed")));
        Assert.Equal(images.Count, Directory.GetFiles(Path.Combine(inbox, "done")).Length);
    }
}
