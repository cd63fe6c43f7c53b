using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Sources.Cameras;

/// <summary>Network cameras through the ffmpeg backend: a real MPEG-TS stream served by ffmpeg on loopback from real
/// defect images, taken away mid-stream and brought back, through the whole in-process daemon.</summary>
public sealed class FfmpegStreamTests : IDisposable
{
    private readonly TempFolder _tmp = new("ffmpeg-cam");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Ffmpeg_HttpServerKilledMidStreamAndBack_ReconnectsEveryFrameAccountedNoChildLeft()
    {
        using var server = FfmpegStreamServer.Create(_tmp.Path, "http");
        server.Start();
        var d = await DaemonHarness.StartAsync(_tmp.Path, s => Camera(s, server.Url, stallSeconds: 5));
        try
        {
            await RunOutageAsync(d, server, "http");
        }
        finally
        {
            await d.DisposeAsync();
        }

        Assert.Empty(FfmpegStreamServer.OurFfmpegChildren(server.Url));
    }

    [Fact]
    public async Task Ffmpeg_UdpSenderKilledMidStream_ReadDeadlineKillsDecoderAndStreamResumes()
    {
        using var server = FfmpegStreamServer.Create(_tmp.Path, "udp");
        server.Start();
        var d = await DaemonHarness.StartAsync(_tmp.Path, s => Camera(s, server.Url, stallSeconds: 2));
        try
        {
            await RunOutageAsync(d, server, "udp");
            var down = d.Events("source_down").Select(e => e.GetProperty("message").GetString()).ToList();
            // UDP has no connection to lose: only the deadline on the pipe (or the source's frame-age watch) can notice.
            Assert.Contains(down, m => m!.Contains("no data from ffmpeg", StringComparison.Ordinal) || m.Contains("stalled", StringComparison.Ordinal));
        }
        finally
        {
            await d.DisposeAsync();
        }

        Assert.Empty(FfmpegStreamServer.OurFfmpegChildren(server.Url));
    }

    private static void Camera(Dictionary<string, string?> s, string url, int stallSeconds)
    {
        s["FmaEdge:Sources:1:Id"] = "cam1";
        s["FmaEdge:Sources:1:Type"] = "camera";
        s["FmaEdge:Sources:1:Uri"] = url; // Backend "auto": a network URL goes to ffmpeg
        s["FmaEdge:Sources:1:FpsLimit"] = "0";
        s["FmaEdge:Sources:1:StallSeconds"] = stallSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["FmaEdge:Sources:1:ReconnectMinMs"] = "200";
        s["FmaEdge:Sources:1:ReconnectMaxMs"] = "800";
    }

    private static async Task RunOutageAsync(DaemonHarness d, FfmpegStreamServer server, string protocol)
    {
        string CamState() => d.Status.Snapshot().Sources[1].State;
        Task WaitAsync(Func<bool> condition, string what) => WaitWithStateAsync(d, server, condition, what);
        await WaitAsync(() => CamState() == "streaming", $"{protocol} camera streaming");
        await DaemonHarness.WaitUntilAsync(() => d.Results("cam1").Count >= 5, "results from the stream", 30_000);
        var first = d.Results("cam1")[0];
        Assert.Equal(128, first.GetProperty("width").GetInt32());
        Assert.Equal(128, first.GetProperty("height").GetInt32());

        server.Kill();
        await DaemonHarness.WaitUntilAsync(() => CamState() != "streaming", "the loss seen", 30_000);
        await DaemonHarness.WaitUntilAsync(() => d.Events("source_down").Count >= 1, "source-down event", 30_000);
        await Task.Delay(1500); // refused (http) or silent (udp) reconnect attempts with backoff
        Assert.NotEqual("streaming", CamState());
        var before = d.Results("cam1").Count;
        server.Start();
        await WaitAsync(() => CamState() == "streaming", "streaming again after the server returned");
        await DaemonHarness.WaitUntilAsync(() => d.Results("cam1").Count >= before + 5, "results after the server returned", 30_000);
        Assert.True(d.Events("source_up").Count >= 2, "a source-up for each start");

        // Stop the stream, let the pipeline empty: every frame taken was published once or dropped and counted. Frames
        // the decoder still had come after the kill, so "idle" is read until the books balance (the two counters are
        // read one after the other, and a frame can move between them), not at the first quiet moment.
        server.Kill();
        await FrameBooks.WaitBalancedAsync(d, 1, "cam1");
        var st = d.Status.Snapshot().Sources[1];
        var results = d.Results("cam1");
        var ids = results.Select(r => r.GetProperty("imageId").GetString()).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(st.Frames, results.Count + st.Dropped);
        Assert.True(st.Errors >= 1, $"the loss counted ({st.Errors})");
    }

    /// <summary>Waits up to 30 s; a timeout names the camera's state and detail.</summary>
    private static async Task WaitWithStateAsync(DaemonHarness d, FfmpegStreamServer server, Func<bool> condition, string what)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > 30_000)
            {
                var c = d.Status.Snapshot().Sources[1];
                Assert.Fail($"timed out after 30 s waiting for: {what} (camera {c.State}: {c.Detail}; server: {server.Errors})");
            }

            await Task.Delay(50);
        }
    }
}
