using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Xunit.Abstractions;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>A camera whose capture blocks inside the kernel: a named pipe nobody writes, so OpenCV's open waits in
/// <c>open()</c> for a writer and no .NET code can interrupt it. The daemon must give up on such an attempt at its deadline,
/// say so (status, MQTT event, log), keep everything else working, and stop within its budget on SIGTERM.</summary>
[Collection(CaptureCollection.Name)]
public sealed class FaultsCaptureHangTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _tmp = new("faults-hang");

    public void Dispose() => _tmp.Dispose();

    private static JsonElement Cam(JsonElement status) => status.GetProperty("sources")[1];

    private static Action<Dictionary<string, string?>> Camera(string uri, string logDir, Action<Dictionary<string, string?>>? more = null) => s =>
    {
        s["FmaEdge:Logging:Level"] = "Information";
        s["FmaEdge:Logging:File"] = Path.Combine(logDir, "fma-edge.log");
        s["FmaEdge:Sources:1:Id"] = "cam1";
        s["FmaEdge:Sources:1:Type"] = "camera";
        s["FmaEdge:Sources:1:Uri"] = uri;
        s["FmaEdge:Sources:1:FpsLimit"] = "4";
        s["FmaEdge:Sources:1:ReconnectMinMs"] = "100";
        s["FmaEdge:Sources:1:ReconnectMaxMs"] = "200";
        more?.Invoke(s);
    };

    [Fact]
    public async Task Camera_PipeNeverOpenedByAWriter_OpensAbandonedAtTheirDeadlineAtMostMaxStuckOthersServeThenStreams()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        var logDir = Path.Combine(_tmp.Path, "logs");
        // The camera's pipe exists but nobody writes to it yet. Declared before the daemon, so it is disposed after it and
        // lets any capture still blocked in open() through, whatever happens in the test.
        await using var cam = new FifoCamera(Path.Combine(_tmp.Path, "cam1.stream"), TestPaths.SampleImages("val", perLeaf: 1), fps: 10);
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, Camera(cam.Path, logDir, s =>
        {
            s["FmaEdge:Sources:1:OpenTimeoutSeconds"] = "2";
            s["FmaEdge:Sources:1:MaxStuckCaptures"] = "2";
        })));

        // Each open is given up after 2 s; after two the source waits for one of them to return instead of leaving more
        // threads behind.
        var (code, capped) = await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => Cam(s).GetProperty("stuckCaptures").GetInt32() == 2
            && Cam(s).GetProperty("detail").GetString()?.Contains("waiting for one to return", StringComparison.Ordinal) == true,
            "two blocked opens abandoned, then waiting", 60_000);
        Assert.Equal(1, code);
        Assert.Equal("reconnecting", Cam(capped).GetProperty("state").GetString());
        Assert.Equal(2, Cam(capped).GetProperty("abandonedCaptures").GetInt64());
        Assert.False(Cam(capped).TryGetProperty("lastFrameAgeSeconds", out var age) && age.ValueKind != JsonValueKind.Null, "no frame ever");
        Assert.Contains("source cam1: 2 abandoned capture(s) still blocked in native code", FaultRig.Problems(capped), StringComparison.Ordinal);
        Assert.Contains("source cam1 is reconnecting: 2 capture attempt(s) stuck in native code", FaultRig.Problems(capped), StringComparison.Ordinal);

        await DaemonHarness.WaitUntilAsync(() => floor.Events("capture_abandoned").Count == 2, "two capture_abandoned events on the floor");
        var events = floor.Events("capture_abandoned");
        Assert.All(events, e =>
        {
            Assert.Equal("warning", e.Json.GetProperty("severity").GetString());
            Assert.Equal("cam1", e.Json.GetProperty("source").GetString());
            var details = e.Json.GetProperty("details");
            Assert.Equal("open", details.GetProperty("stage").GetString());
            Assert.Equal("open", details.GetProperty("reason").GetString());
            Assert.Equal(cam.Path, details.GetProperty("subject").GetString());
            Assert.True(double.Parse(details.GetProperty("blocked_seconds").GetString()!, CultureInfo.InvariantCulture) >= 2);
        });
        Assert.Equal(new[] { "1", "2" }, events.Select(e => e.Json.GetProperty("details").GetProperty("abandoned").GetString()));
        Assert.Equal(new[] { "1", "2" }, events.Select(e => e.Json.GetProperty("details").GetProperty("stuck").GetString()));
        var logged = FloorObserver.LogLinesFor(logDir, 2008, "Source", "cam1");
        Assert.Equal(2, logged.Count);
        Assert.All(logged, l => Assert.Equal("open", l.GetProperty("Stage").GetString()));

        // Nothing else waits on the blocked captures: the folder source classifies an image meanwhile.
        var image = TestPaths.SampleImages("val")[0];
        d.Drop([image]);
        await DaemonHarness.WaitUntilAsync(() => floor.Results.Any(r => r.Json.GetProperty("image").GetProperty("id").GetString() == Path.GetFileName(image)),
            "the folder source's result while the camera is stuck");

        // The camera appears: the blocked opens return (their threads end, nothing they read is used), and a fresh
        // attempt streams.
        cam.Start();
        var (healthy, streaming) = await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && Cam(s).GetProperty("state").GetString() == "streaming"
            && Cam(s).GetProperty("stuckCaptures").GetInt32() == 0, "streaming with no capture left blocked", 60_000);
        Assert.True(Cam(streaming).GetProperty("abandonedCaptures").GetInt64() >= 2);
        await DaemonHarness.WaitUntilAsync(() => FloorObserver.LogLinesFor(logDir, 2009, "Source", "cam1").Count >= 2, "both abandoned captures returned (log 2009)");
        await DaemonHarness.WaitUntilAsync(() => floor.Results.Count(r => r.Json.GetProperty("source").GetString() == "cam1") >= 2, "camera results", 60_000);
    }

    [Fact]
    public async Task Run_SigtermWhileACameraOpenIsBlocked_ExitsZeroWithinTheStopBudgetEveryAcceptedImageOnce()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        var logDir = Path.Combine(_tmp.Path, "logs");
        await using var cam = new FifoCamera(Path.Combine(_tmp.Path, "cam1.stream"), TestPaths.SampleImages("val", perLeaf: 1).Take(1));
        // 1,213 images and small queues, so the signal finds images in flight and others still waiting in the folder (210
        // were all finished before the signal once the shipped model ran at ~500 images/s). The open deadline is far
        // away: at the signal the open is still blocked, not yet abandoned.
        var images = TestPaths.SampleImages("train", perLeaf: 60).ToList();
        var settings = DaemonHarness.Settings(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port, Camera(cam.Path, logDir, s =>
        {
            s["FmaEdge:Sources:1:OpenTimeoutSeconds"] = "600";
            s["FmaEdge:Pipeline:InputCapacity"] = "4";
            s["FmaEdge:Pipeline:InferCapacity"] = "4";
            s["FmaEdge:Pipeline:PublishCapacity"] = "4";
        })));
        var (config, inbox) = await ProcessTests.PrepareAsync(_tmp.Path, settings, []);
        var socket = Path.Combine(_tmp.Path, "run", "status.sock");

        using var p = ProcessTests.Start(config);
        // Images arrive once the publisher is connected, so results reach the floor as they are made (not all at once
        // from the outbox) and the signal finds the stream under way.
        var (_, before) = await FaultRig.WaitForStatusAsync(socket, (_, s) => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("output", out var o)
            && o.GetProperty("connected").GetBoolean() && Cam(s).GetProperty("state").GetString() == "connecting",
            "connected to the broker, the camera's open blocked", 90_000);
        Assert.Equal(0, Cam(before).GetProperty("frames").GetInt64()); // no frame ever
        DaemonHarness.DropInto(inbox, images);
        // Nothing between the first results and the signal (a status call starts a process), so the stream is under way.
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages >= 3 || p.HasExited, "first results", 90_000);
        Assert.False(p.HasExited, $"fma-edge exited early with code {(p.HasExited ? p.ExitCode : 0)}");

        var stop = Stopwatch.StartNew();
        await p.SignalAsync("TERM");
        await p.WaitForExitAsync(TimeSpan.FromSeconds(45)); // systemd's TimeoutStopSec
        stop.Stop();
        output.WriteLine($"SIGTERM to exit: {stop.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(0, p.ExitCode);
        Assert.True(stop.Elapsed < TimeSpan.FromSeconds(30), $"stopped in {stop.Elapsed.TotalSeconds:F1} s, beyond the host's 30 s budget");

        // Drained: every image taken was finished, its result delivered once, its file moved; the rest wait in the inbox.
        var done = Directory.GetFiles(Path.Combine(inbox, "done")).Select(f => Path.GetFileName(f)!).ToList();
        output.WriteLine($"finished before the stop: {done.Count} of {images.Count}");
        Assert.True(done.Count >= 3 && done.Count < images.Count, $"stopped mid-stream ({done.Count} of {images.Count} done)");
        Assert.Equal(images.Count, done.Count + Directory.GetFiles(inbox).Length);
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == done.Count, "each finished image's result on the floor", 10_000);
        FaultRig.AssertEachImageOnce(floor.Results, done);
        // Sent before the exit, but it may reach a busy subscriber after the results: waited for, like the rest.
        await DaemonHarness.WaitUntilAsync(() => floor.Events("stopping").Count > 0, "the stopping event", 10_000);
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.State == "offline", "the retained offline status", 10_000);

        // The blocked open was left behind at the stop, and said so.
        var abandoned = await DaemonHarness.WaitForAsync(() => floor.Events("capture_abandoned").FirstOrDefault(), "capture_abandoned at the stop", 10_000);
        Assert.Equal("open", abandoned.Json.GetProperty("details").GetProperty("stage").GetString());
        Assert.Single(FloorObserver.LogLinesFor(logDir, 2008, "Source", "cam1"));
    }
}
