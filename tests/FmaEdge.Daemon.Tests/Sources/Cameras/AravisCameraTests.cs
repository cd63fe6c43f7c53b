using System.Globalization;
using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Cli.Commands;
using FmaEdge.Daemon.Status;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Publishing;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Daemon.Tests.Sources.Cameras;

/// <summary>GenICam cameras through the Aravis backend against a real GigE Vision camera protocol on loopback (Aravis's
/// camera simulator), through the whole in-process daemon.</summary>
[Collection(FakeGigECameraCollection.Name)]
public sealed class AravisCameraTests : IDisposable
{
    private readonly TempFolder _tmp = new("aravis-cam");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Aravis_FreeRunningWithRefusedFeatures_StreamsFrameIdsOnceAndReportsEveryRefusal()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:PixelFormat"] = "Mono8";
            s["FmaEdge:Sources:1:GenICam:FrameRate"] = "10";
            s["FmaEdge:Sources:1:GenICam:Features:0"] = "NoSuchFeature=1";
            s["FmaEdge:Sources:1:GenICam:Features:1"] = "AcquisitionMode=NotAMode";
            s["FmaEdge:Sources:1:GenICam:Features:2"] = "GainRaw=2";
        });

        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State == "streaming", "camera streaming");
        await WaitAsync(d, () => d.Results("cam1").Count >= 10, "10 results");
        var status = d.Status.Snapshot().Sources[1];
        var c = status.Camera!;
        Assert.Equal("aravis", c.Backend);
        Assert.Equal(cam.Serial, c.Serial);
        Assert.Equal("Mono8", c.PixelFormat);
        Assert.True(c.FeatureProblems.Count == 2, string.Join(" // ", c.FeatureProblems));
        Assert.Contains(c.FeatureProblems, p => p.StartsWith("NoSuchFeature=1: unknown feature", StringComparison.Ordinal));
        Assert.Contains(c.FeatureProblems, p => p.StartsWith("AcquisitionMode=NotAMode: refused", StringComparison.Ordinal));
        Assert.InRange(status.Fps, 5, 15);

        var frameIds = d.Results("cam1").Select(r => r.GetProperty("camera").GetProperty("frameId").GetInt64()).ToList();
        Assert.Equal(frameIds.Count, frameIds.Distinct().Count());
        Assert.True(frameIds.Zip(frameIds.Skip(1)).All(p => p.Second > p.First), "camera frame ids increase");
        var first = d.Results("cam1")[0];
        Assert.Equal(512, first.GetProperty("width").GetInt32());
        Assert.True(first.GetProperty("camera").GetProperty("timestampNs").GetInt64() > 0);

        // The same facts through the status socket, as fma-edge status shows them.
        var json = JsonDocument.Parse(await StatusClient.RequestAsync(d.Socket, "status", CancellationToken.None)).RootElement;
        var camJson = json.GetProperty("sources")[1].GetProperty("camera");
        Assert.Equal("aravis", camJson.GetProperty("backend").GetString());
        Assert.Equal(2, camJson.GetProperty("featureProblems").GetArrayLength());

        // ... and fma-edge status's cameras table.
        using var table = new StringWriter();
        using var err = new StringWriter();
        await StatusCommand.RunAsync(CliConsole.ToWriter(table, err), d.Socket, null, json: false, CancellationToken.None);
        var text = table.ToString();
        Assert.Contains("cameras", text, StringComparison.Ordinal);
        Assert.Matches($@"cam1\s.*aravis\s.*s/n {cam.Serial}.*Mono8\s.*512x512", text);
        Assert.Contains("camera cam1: feature not applied: NoSuchFeature=1: unknown feature", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aravis_SoftwareTrigger_NTriggersGiveNResultsEachOnceWithTriggerTime()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:Trigger"] = "software";
            s["FmaEdge:Sources:1:StallSeconds"] = "3";
        });

        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State == "streaming", "camera streaming");
        await Task.Delay(4000); // longer than StallSeconds: a triggered camera may be silent without a reconnect
        Assert.Empty(d.Results("cam1"));
        Assert.Equal("streaming", d.Status.Snapshot().Sources[1].State);

        const int n = 6;
        var sent = new List<DateTimeOffset>();
        for (var i = 0; i < n; i++)
        {
            sent.Add(DateTimeOffset.UtcNow);
            var reply = await StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None);
            Assert.Contains("\"triggered\":true", reply, StringComparison.Ordinal);
            await Task.Delay(250);
        }

        await WaitAsync(d, () => d.Results("cam1").Count >= n, $"{n} results for {n} triggers");
        await Task.Delay(1500);
        var results = d.Results("cam1");
        Assert.Equal(n, results.Count);
        var ids = results.Select(r => r.GetProperty("camera").GetProperty("frameId").GetInt64()).ToList();
        Assert.Equal(n, ids.Distinct().Count());
        var captured = results.Select(r => r.GetProperty("capturedUtc").GetDateTimeOffset()).ToList();
        for (var i = 0; i < n; i++)
        {
            // captured_at is the moment the trigger went to the camera, not when the frame arrived.
            Assert.InRange((captured[i] - sent[i]).TotalMilliseconds, 0, 200);
        }

        var c = d.Status.Snapshot().Sources[1].Camera!;
        Assert.Equal(n, c.TriggersReceived);
        Assert.Equal(n, c.FramesDelivered);
        Assert.Equal(0, c.IncompleteFrames);
    }

    [Fact]
    public async Task Aravis_SoftwareTriggerBurst_EveryTriggerGetsItsOwnFrame()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:Trigger"] = "software";
            s["FmaEdge:Sources:1:StallSeconds"] = "3";
        });

        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State == "streaming", "camera streaming");
        // Back to back, faster than the camera takes frames: a camera ignores a trigger while it is still busy with the
        // last one, so each must wait for the previous frame (sent all at once they gave one frame).
        const int n = 6;
        for (var i = 0; i < n; i++)
        {
            var reply = await StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None);
            Assert.Contains("\"triggered\":true", reply, StringComparison.Ordinal);
        }

        await WaitAsync(d, () => d.Results("cam1").Count >= n, $"{n} results for a burst of {n} triggers");
        await Task.Delay(1500);
        var results = d.Results("cam1");
        Assert.Equal(n, results.Count);
        var ids = results.Select(r => r.GetProperty("camera").GetProperty("frameId").GetInt64()).ToList();
        Assert.Equal(n, ids.Distinct().Count());
        var captured = results.Select(r => r.GetProperty("capturedUtc").GetDateTimeOffset()).Order().ToList();
        Assert.Equal(n, captured.Distinct().Count()); // each frame carries its own trigger's time
        var st = d.Status.Snapshot().Sources[1];
        Assert.Equal("streaming", st.State);
        Assert.Equal((n, n), (st.Camera!.TriggersReceived, st.Camera.FramesDelivered));
    }

    [Fact]
    public async Task Aravis_SoftwareTriggerWhileCameraLost_RefusedAndNeverFiredLater()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:Trigger"] = "software";
            s["FmaEdge:Sources:1:StallSeconds"] = "2";
        });

        string State() => d.Status.Snapshot().Sources[1].State;
        await WaitAsync(d, () => State() == "streaming", "camera streaming");
        Assert.Contains("\"triggered\":true", await StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None), StringComparison.Ordinal);
        await WaitAsync(d, () => d.Results("cam1").Count == 1, "the first triggered frame");

        cam.Kill();
        await WaitAsync(d, () => State() != "streaming", "the loss seen");
        // While the daemon reconnects (attempts opening and failing), no trigger is taken: it could only be lost, or
        // fire later at whatever is in front of the camera by then.
        for (var i = 0; i < 8; i++)
        {
            var reply = await StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None);
            Assert.Contains("\"triggered\":false", reply, StringComparison.Ordinal);
            await Task.Delay(250);
        }

        cam.Start();
        await WaitAsync(d, () => State() == "streaming", "streaming after the camera came back");
        await Task.Delay(2000);
        Assert.Single(d.Results("cam1")); // nothing fired on reconnect
        Assert.Equal(1, d.Status.Snapshot().Sources[1].Camera!.TriggersReceived);

        for (var i = 0; i < 3; i++)
        {
            Assert.Contains("\"triggered\":true", await StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None), StringComparison.Ordinal);
        }

        await WaitAsync(d, () => d.Results("cam1").Count >= 4, "3 more results after the camera came back");
        await Task.Delay(1000);
        var c = d.Status.Snapshot().Sources[1].Camera!;
        Assert.Equal((4, 4, 4), (d.Results("cam1").Count, c.TriggersReceived, c.FramesDelivered));
    }

    [Fact]
    public async Task Aravis_SoftwareTriggerOverMqtt_OnlyAUserTheAclLetsWriteTriggersAndEachFrameIsPublishedOnce()
    {
        // The embedded broker with logins and an ACL (docs/mqtt.md): the trigger topic is authorised like any other.
        var passwd = Path.Combine(_tmp.Path, "passwd");
        foreach (var user in new[] { "edge", "plc", "floor" })
        {
            PasswordFile.SetUser(passwd, user, user + "-secret", iterations: 1000);
        }

        var acl = Path.Combine(_tmp.Path, "acl");
        File.WriteAllLines(acl, ["user edge", "topic readwrite fma/test-node/#", "user plc", "topic write fma/test-node/cam1/trigger",
            "user floor", "topic read fma/test-node/+/result"]);
        var port = MosquittoBroker.FreeLoopbackPort();
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:Trigger"] = "software";
            s["FmaEdge:Output:Type"] = "mqtt";
            s.Remove("FmaEdge:Output:Path");
            s["FmaEdge:Mqtt:Host"] = "127.0.0.1";
            s["FmaEdge:Mqtt:Port"] = port.ToString(CultureInfo.InvariantCulture);
            s["FmaEdge:Mqtt:Embedded:Enabled"] = "true";
            s["FmaEdge:Mqtt:Embedded:Port"] = port.ToString(CultureInfo.InvariantCulture);
            s["FmaEdge:Mqtt:Embedded:PasswordFile"] = passwd;
            s["FmaEdge:Mqtt:Embedded:AclFile"] = acl;
            s["FmaEdge:Mqtt:Username"] = "edge";
            s["FmaEdge:Mqtt:Password"] = "edge-secret";
        });
        await using var floor = await Subscriber.ConnectAsync("127.0.0.1", port, "floor", "floor-secret", "fma/test-node/+/result");
        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State == "streaming" && d.Status.Snapshot().Output.Connected, "camera streaming, broker connected");

        async Task<MqttClientPublishReasonCode> TriggerAs(string user)
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId(user + "-client")
                .WithCredentials(user, user + "-secret").WithProtocolVersion(MqttProtocolVersion.V500).WithTimeout(TimeSpan.FromSeconds(10)).Build());
            var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("fma/test-node/cam1/trigger")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            await client.DisconnectAsync();
            return result.ReasonCode;
        }

        // The floor may read results but not write the trigger topic: refused by the broker, no frame taken.
        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, await TriggerAs("floor"));
        await Task.Delay(1500);
        Assert.Empty(floor.Results);
        Assert.Equal(0, d.Status.Snapshot().Sources[1].Camera!.TriggersReceived);

        const int n = 4;
        for (var i = 0; i < n; i++)
        {
            Assert.Equal(MqttClientPublishReasonCode.Success, await TriggerAs("plc"));
        }

        await WaitAsync(d, () => floor.Results.Count >= n, $"{n} results over MQTT for {n} MQTT triggers");
        await Task.Delay(1500);
        var results = floor.Results.ToList();
        Assert.Equal(n, results.Count);
        Assert.All(results, r => Assert.Equal("cam1", r.GetProperty("source").GetString()));
        var ids = results.Select(r => r.GetProperty("camera").GetProperty("frame_id").GetInt64()).ToList();
        Assert.Equal(n, ids.Distinct().Count());
        Assert.All(results, r => Assert.True(r.GetProperty("camera").GetProperty("timestamp_ns").GetInt64() > 0));
        var c = d.Status.Snapshot().Sources[1].Camera!;
        Assert.Equal((n, n), (c.TriggersReceived, c.FramesDelivered));

        // A flood far faster than the camera takes frames: at most 64 wait, the rest are refused at once, and every
        // trigger taken still gets its own frame.
        using (var plc = new MqttClientFactory().CreateMqttClient())
        {
            await plc.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("plc-flood")
                .WithCredentials("plc", "plc-secret").WithProtocolVersion(MqttProtocolVersion.V500).WithTimeout(TimeSpan.FromSeconds(10)).Build());
            // All in flight together (QoS 1, each acknowledged), so the flood takes milliseconds.
            await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => plc.PublishAsync(new MqttApplicationMessageBuilder()
                .WithTopic("fma/test-node/cam1/trigger").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build())));

            await plc.DisconnectAsync();
        }

        var publisher = d.Services.GetRequiredService<MqttPublisher>();
        await WaitAsync(d, () => publisher.Triggers.Taken + publisher.Triggers.Refused == n + 100, "the flood handed to the camera source");
        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].Camera!.FramesDelivered == d.Status.Snapshot().Sources[1].Camera!.TriggersReceived,
            "a frame for every trigger taken");
        var st = d.Status.Snapshot().Sources[1];
        Assert.InRange(st.Camera!.TriggersReceived - n, 64, 99); // 64 waiting, plus the few the camera took during the flood
        Assert.Equal(n + 100 - st.Camera.TriggersReceived, publisher.Triggers.Refused);
        Assert.Equal("streaming", st.State);
        await WaitAsync(d, () => d.Pipeline.InFlight == 0 && d.Status.Snapshot().Sources[1] is { Pending: 0 } s
            && s.Frames == floor.Results.Count + s.Dropped, "every frame published once or dropped and counted");
        var all = floor.Results.Select(r => r.GetProperty("camera").GetProperty("frame_id").GetInt64()).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
    }

    [Fact]
    public async Task Aravis_CameraKilledMidStreamAndRestarted_ReconnectsAndEveryFrameAccounted()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:FrameRate"] = "10";
            s["FmaEdge:Sources:1:StallSeconds"] = "2";
        });

        string State() => d.Status.Snapshot().Sources[1].State;
        await WaitAsync(d, () => State() == "streaming", "camera streaming");
        await WaitAsync(d, () => d.Results("cam1").Count >= 5, "results");
        cam.Kill();
        await WaitAsync(d, () => State() != "streaming", "the loss seen");
        await Task.Delay(2000); // reconnect attempts with backoff while the camera is gone
        Assert.NotEqual("streaming", State());
        var before = d.Results("cam1").Count;
        cam.Start();
        await WaitAsync(d, () => State() == "streaming", "streaming after the camera came back");
        await WaitAsync(d, () => d.Results("cam1").Count >= before + 5, "results after the camera came back");

        cam.Kill();
        await FrameBooks.WaitBalancedAsync(d, 1, "cam1");
        var st = d.Status.Snapshot().Sources[1];
        var results = d.Results("cam1");
        Assert.Equal(st.Frames, results.Count + st.Dropped);
        Assert.True(st.Errors >= 1);
        Assert.True(d.Events("source_up").Count >= 2 && d.Events("source_down").Count >= 1, "down and up reported");
        // Each camera run numbers its frames from the start: within a run a frame id is never repeated.
        var ids = results.Select(r => r.GetProperty("camera").GetProperty("frameId").GetInt64()).ToList();
        var runs = new List<List<long>> { new() };
        foreach (var id in ids)
        {
            if (runs[^1].Count > 0 && id <= runs[^1][^1])
            {
                runs.Add([]);
            }

            runs[^1].Add(id);
        }

        Assert.InRange(runs.Count, 2, 3);
        Assert.All(runs, r => Assert.Equal(r.Count, r.Distinct().Count()));
    }

    [Fact]
    public async Task Aravis_CameraBackOnAnotherAddress_FoundBySerialAndStreamsAgain()
    {
        using var alias = new LoopbackAlias("127.0.0.2");
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:FrameRate"] = "10";
            s["FmaEdge:Sources:1:StallSeconds"] = "2";
        });

        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State == "streaming", "camera streaming");
        Assert.Contains("127.0.0.1", d.Status.Snapshot().Sources[1].Camera!.Address, StringComparison.Ordinal);
        await WaitAsync(d, () => d.Results("cam1").Count >= 3, "results");
        cam.Kill();
        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].State != "streaming", "the loss seen");
        var before = d.Results("cam1").Count;
        cam.Start(alias.Address); // the same camera (serial) after a DHCP lease change
        await WaitAsync(d, () => d.Status.Snapshot().Sources[1] is { State: "streaming" } s && s.Camera!.Address.Contains("127.0.0.2", StringComparison.Ordinal),
            "streaming from the new address");
        await WaitAsync(d, () => d.Results("cam1").Count >= before + 3, "results from the new address");
    }

    [Theory]
    [InlineData("Mono16")]
    [InlineData("BayerRG8")]
    [InlineData("RGB8")]
    public async Task Aravis_PixelFormatRegionExposureGainPacketSize_AppliedAndFramesClassified(string format)
    {
        // Mono16 reaches the pipeline as a 16-bit frame and is scaled to 8 bits by the one conversion the decoder and
        // the trainer use (value / 257); Bayer is demosaiced to colour. The settings are read back by Aravis: a value the
        // camera refused or changed would be listed as a feature problem.
        using var cam = new FakeGigECamera();
        cam.Start();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:PixelFormat"] = format;
            s["FmaEdge:Sources:1:GenICam:Region"] = "0,0,320,240";
            s["FmaEdge:Sources:1:GenICam:ExposureUs"] = "2000";
            s["FmaEdge:Sources:1:GenICam:Gain"] = "2";
            s["FmaEdge:Sources:1:GenICam:PacketSize"] = "1400";
            s["FmaEdge:Sources:1:GenICam:FrameRate"] = "10";
        });

        await WaitAsync(d, () => d.Results("cam1").Count >= 3, $"3 results from {format} frames");
        var c = d.Status.Snapshot().Sources[1].Camera!;
        Assert.Equal(format, c.PixelFormat);
        Assert.Equal((320, 240), (c.Width, c.Height));
        Assert.True(c.FeatureProblems.Count == 0, string.Join(" // ", c.FeatureProblems));
        var r = d.Results("cam1")[0];
        Assert.Equal(320, r.GetProperty("width").GetInt32());
        Assert.Equal(240, r.GetProperty("height").GetInt32());
        Assert.Empty(d.Events("bad_image"));
    }

    [Fact]
    public async Task Aravis_PacketLoss_IncompleteFramesCountedNeverDelivered()
    {
        // The simulator loses 3 GVSP packets per thousand: about 4 frames in 10 miss a packet of their ~190.
        using var cam = new FakeGigECamera(lossPerThousand: 3);
        cam.Start();
        var metricsPort = MosquittoBroker.FreeLoopbackPort();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            Camera(s, cam.Serial);
            s["FmaEdge:Sources:1:GenICam:FrameRate"] = "10";
            s["FmaEdge:Metrics:Enabled"] = "true";
            s["FmaEdge:Metrics:Port"] = metricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        });

        // GigE Vision block ids run 1..65535 and wrap to 1: a frame never delivered is a gap between delivered neighbours.
        List<long> Ids() => d.Results("cam1").Select(r => r.GetProperty("camera").GetProperty("frameId").GetInt64()).ToList();
        static long Missing(List<long> ids) => ids.Zip(ids.Skip(1)).Sum(p => ((((p.Second - p.First) % 65535) + 65535) % 65535) - 1);
        await WaitAsync(d, () => d.Status.Snapshot().Sources[1].Camera!.IncompleteFrames >= 3 && Ids() is { Count: >= 5 } got && Missing(got) >= 1,
            "incomplete frames counted and a gap among the delivered frame ids");
        var ids = Ids();
        var after = d.Status.Snapshot().Sources[1]; // read after the ids: counters only grow
        Assert.Equal(ids.Count, ids.Distinct().Count());
        // Every frame id missing between delivered ones was an incomplete frame (or dropped on overload), never lost silently.
        Assert.InRange(Missing(ids), 1, after.Camera!.IncompleteFrames + after.Dropped);

        // The same counters for the monitoring stack (docs/operations.md, Metrics), accepted by promtool.
        var scrape = await Scrape.GetAsync($"http://127.0.0.1:{metricsPort}/metrics");
        var (exit, output) = scrape.Promtool();
        Assert.True(exit == 0, output);
        var camera = d.Status.Snapshot().Sources[1].Camera!;
        Assert.InRange(scrape.Value("fmaedge_camera_incomplete_frames_total", ("source", "cam1")), 3, camera.IncompleteFrames);
        Assert.InRange(scrape.Value("fmaedge_camera_frames_delivered_total", ("source", "cam1")), ids.Count, camera.FramesDelivered);
        Assert.Equal(0, scrape.Value("fmaedge_camera_triggers_total", ("source", "cam1")));
    }

    private static void Camera(Dictionary<string, string?> s, string serial)
    {
        s["FmaEdge:Sources:1:Id"] = "cam1";
        s["FmaEdge:Sources:1:Type"] = "camera";
        s["FmaEdge:Sources:1:Backend"] = "aravis";
        s["FmaEdge:Sources:1:Uri"] = serial;
        s["FmaEdge:Sources:1:FpsLimit"] = "0";
        s["FmaEdge:Sources:1:QueueCapacity"] = "16";
        s["FmaEdge:Sources:1:ReconnectMinMs"] = "200";
        s["FmaEdge:Sources:1:ReconnectMaxMs"] = "1000";
    }

    private static async Task WaitAsync(DaemonHarness d, Func<bool> condition, string what)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > 30_000)
            {
                var c = d.Status.Snapshot().Sources[1];
                Assert.Fail($"timed out after 30 s waiting for: {what} (camera {c.State}: {c.Detail}; {c.Camera})");
            }

            await Task.Delay(50);
        }
    }
}

/// <summary>Tests that start the fake GigE camera: one at a time (one GVCP port on loopback).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FakeGigECameraCollection
{
    public const string Name = "fake GigE camera";
}
