using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>Camera faults through the whole in-process daemon: a live MJPEG camera on a named pipe (real images, read by
/// OpenCV's FFmpeg) that hangs without closing, then vanishes and comes back; results over a real mosquitto, status
/// through the socket.</summary>
[Collection(CaptureCollection.Name)]
public sealed class FaultsCameraTests : IDisposable
{
    private readonly TempFolder _tmp = new("faults-cam");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Camera_StopsDeliveringWithoutClosingThenVanishesAndReturns_StallDetectedReconnectsEveryFrameAccounted()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        await using var cam = new FifoCamera(Path.Combine(_tmp.Path, "cam1.stream"), TestPaths.SampleImages("val", perLeaf: 1), fps: 10);
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, s =>
        {
            s["FmaEdge:Sources:1:Id"] = "cam1";
            s["FmaEdge:Sources:1:Type"] = "camera";
            s["FmaEdge:Sources:1:Uri"] = cam.Path;
            s["FmaEdge:Sources:1:FpsLimit"] = "4";
            s["FmaEdge:Sources:1:StallSeconds"] = "2";
            s["FmaEdge:Sources:1:OpenTimeoutSeconds"] = "10";
            s["FmaEdge:Sources:1:ReconnectMinMs"] = "200";
            s["FmaEdge:Sources:1:ReconnectMaxMs"] = "1000";
        }));

        List<FloorMessage> CamResults() => floor.Results.Where(r => r.Json.GetProperty("source").GetString() == "cam1").ToList();
        static bool CamIs(System.Text.Json.JsonElement s, string state) => s.GetProperty("sources")[1].GetProperty("state").GetString() == state;

        await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && CamIs(s, "streaming"), "camera streaming, node healthy", 60_000);
        await DaemonHarness.WaitUntilAsync(() => CamResults().Count >= 3, "camera results", 60_000);

        // 1. The camera hangs: the connection stays open, no frame arrives. Only frame age can tell.
        cam.Pause();
        var (code, stalled) = await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => !CamIs(s, "streaming"), "stall detected");
        Assert.Equal(1, code);
        Assert.Contains("source cam1 is reconnecting: stalled: no frame for", FaultRig.Problems(stalled), StringComparison.Ordinal);
        Assert.True(stalled.GetProperty("sources")[1].GetProperty("lastFrameAgeSeconds").GetDouble() >= 2);
        Assert.Equal("watching", stalled.GetProperty("sources")[0].GetProperty("state").GetString()); // the folder source carries on
        await DaemonHarness.WaitUntilAsync(() => floor.Events("source_down").Any(e => e.Json.GetProperty("message").GetString()!.Contains("stalled", StringComparison.Ordinal)),
            "source_down (stalled) on the floor");
        // The stalled capture is still blocked in its read (the pipe is open, nothing comes): that attempt is abandoned,
        // counted and published, and its thread left to return when the stream ends.
        var abandoned = await DaemonHarness.WaitForAsync(() => floor.Events("capture_abandoned").FirstOrDefault(), "capture_abandoned (read) on the floor");
        Assert.Equal("warning", abandoned.Json.GetProperty("severity").GetString());
        Assert.Equal("cam1", abandoned.Json.GetProperty("source").GetString());
        var details = abandoned.Json.GetProperty("details");
        Assert.Equal("read", details.GetProperty("stage").GetString());
        Assert.Equal(cam.Path, details.GetProperty("subject").GetString());
        Assert.True(double.Parse(details.GetProperty("blocked_seconds").GetString()!, System.Globalization.CultureInfo.InvariantCulture) >= 2);
        var (_, whileStuck) = await FaultRig.StatusAsync(d.Socket);
        Assert.True(whileStuck.GetProperty("sources")[1].GetProperty("abandonedCaptures").GetInt64() >= 1);
        var upsBefore = floor.Events("source_up").Count;
        // The hung camera is restarted (its old stream ends, a new one starts): the source must pick it up again.
        await cam.VanishAsync();
        cam.Start();
        await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && CamIs(s, "streaming"), "streaming again after the stall", 60_000);
        await DaemonHarness.WaitUntilAsync(() => floor.Events("source_up").Count > upsBefore, "source_up on the floor");
        var afterStall = CamResults().Count;
        await DaemonHarness.WaitUntilAsync(() => CamResults().Count >= afterStall + 3, "frames again after the stall", 60_000);

        // 2. The camera vanishes (connection closed, port refused) and comes back.
        var downs = floor.Events("source_down").Count;
        await cam.VanishAsync();
        var (_, gone) = await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => !CamIs(s, "streaming"), "camera loss seen");
        Assert.Contains("source cam1 is", FaultRig.Problems(gone), StringComparison.Ordinal);
        await DaemonHarness.WaitUntilAsync(() => floor.Events("source_down").Count > downs, "source_down for the loss");
        await Task.Delay(1500); // several refused reconnects with backoff
        Assert.False(CamIs((await FaultRig.StatusAsync(d.Socket)).Json, "streaming"));
        cam.Start();
        await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && CamIs(s, "streaming"), "streaming after the camera returned", 60_000);
        var afterReturn = CamResults().Count;
        await DaemonHarness.WaitUntilAsync(() => CamResults().Count >= afterReturn + 3, "frames after the camera returned", 60_000);

        // Every frame taken is accounted for: published once, or dropped under overload (counted), none twice.
        cam.Pause();
        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.InFlight == 0 && d.Status.Snapshot().Sources[1].Pending == 0, "pipeline idle", 30_000);
        await Task.Delay(1000);
        var st = d.Status.Snapshot().Sources[1];
        await DaemonHarness.WaitUntilAsync(() => CamResults().Select(r => r.Json.GetProperty("message_id").GetString()).Distinct().Count() == st.Frames - st.Dropped,
            $"frames {st.Frames} = results + dropped {st.Dropped}", 15_000);
        var results = CamResults();
        Assert.Equal(results.Select(r => r.Json.GetProperty("image").GetProperty("id").GetString()).Distinct().Count(),
            results.Select(r => r.Json.GetProperty("message_id").GetString()).Distinct().Count());
        Assert.True(st.Errors >= 2, $"both losses counted ({st.Errors})");
        Assert.True(st.AbandonedCaptures >= 1 && st.StuckCaptures == 0, $"the stalled read abandoned, its thread back ({st.AbandonedCaptures}, {st.StuckCaptures} stuck)");
        var ups = floor.Events("source_up").Count(e => e.Json.GetProperty("source").GetString() == "cam1");
        var downsTotal = floor.Events("source_down").Count(e => e.Json.GetProperty("source").GetString() == "cam1");
        Assert.True(downsTotal >= 2 && ups == downsTotal + 1, $"each loss a source_down paired with a later source_up ({ups} up, {downsTotal} down)");
    }
}
