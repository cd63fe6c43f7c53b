using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>Broker faults through the whole in-process daemon (real mosquitto, the trained model, real images, the status
/// socket read through the CLI's own code): broker down at start, killed and restarted mid-stream, and a network
/// partition (the broker unreachable rather than refusing).</summary>
public sealed class FaultsBrokerTests : IDisposable
{
    private readonly TempFolder _tmp = new("faults-broker");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Run_BrokerDownAtStart_ServesBuffersAndPublishesEverythingWhenItAppears()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker); // its persistent session outlives the outage
        await broker.StopAsync();

        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port));
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(12).ToList();
        var names = d.Drop(images);

        // Serving without a broker: every image classified, committed to the outbox and moved to done/.
        await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(d.Done).Length == images.Count, "all files done with the broker down");
        var (code, down) = await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => s.GetProperty("output").GetProperty("outboxDepth").GetInt64() >= images.Count,
            "results waiting in the outbox");
        Assert.Equal(1, code); // degraded
        Assert.Equal("degraded", down.GetProperty("health").GetString());
        Assert.False(down.GetProperty("output").GetProperty("connected").GetBoolean());
        Assert.Contains("output mqtt not delivering", FaultRig.Problems(down), StringComparison.Ordinal);
        Assert.Equal("watching", down.GetProperty("sources")[0].GetProperty("state").GetString());
        Assert.Equal(images.Count, down.GetProperty("counts").GetProperty("processed").GetInt64());
        Assert.Empty(floor.Messages);

        await broker.StartAsync();
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == images.Count, "every result once the broker appears");
        // Healthy can come a moment before the last queued events (broker_connected ...) leave the outbox: wait for both.
        var (okCode, up) = await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() == 0,
            "healthy with an empty outbox after the broker appeared");
        Assert.Equal(0, up.GetProperty("output").GetProperty("outboxDepth").GetInt64());
        Assert.Equal(0, okCode);
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.Json.GetProperty("health").GetString() == "healthy",
            "the retained status turns healthy");
        await Task.Delay(500);

        FaultRig.AssertEachImageOnce(floor.Results, names);
        Assert.All(floor.Results, r => Assert.True(r.Json.GetProperty("historical").GetBoolean(), "committed while the broker was unreachable"));
        var connected = Assert.Single(floor.Events("broker_connected"));
        Assert.True(connected.Json.GetProperty("details").GetProperty("backlog").GetInt64() >= images.Count);
        Assert.Single(floor.Events("started"));
        Assert.Equal("online", floor.Statuses[^1].State);
    }

    [Fact]
    public async Task Run_BrokerKilledOrStoppedThreeTimesMidStream_EveryImageOnceReplaysHistoricalInOrder()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port));
        var images = new Queue<string>(TestPaths.SampleImages("val", perLeaf: 4).Take(66));
        var names = new List<string>();
        var committedWhileDown = new List<string>();
        var n = 0;

        Task Stream(int count) => Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                var name = d.Drop([images.Dequeue()], $"{n++:D3}-")[0];
                lock (names)
                {
                    names.Add(name);
                }

                await Task.Delay(80);
            }
        });

        // SIGKILL (a broker crash) at a quiet moment, SIGTERM (a broker restart) in the middle of the flow. A crash can
        // lose what the broker acknowledged but had not yet forwarded or saved (mosquitto persists every second): that is
        // the broker's durability, not the node's, so the crashes land when nothing is in flight.
        foreach (var (bounce, crash) in new[] { (1, true), (2, false), (3, true) })
        {
            var start = names.Count;
            var live = Stream(12);
            if (crash)
            {
                await live;
                await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == names.Count, $"quiet before crash {bounce}");
                await broker.KillAsync();
            }
            else
            {
                await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages >= start + 6, $"flowing before restart {bounce}");
                await broker.StopAsync();
                await live;
            }

            var (_, down) = await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 1 && !s.GetProperty("output").GetProperty("connected").GetBoolean(),
                $"degraded during outage {bounce}");
            Assert.Contains("output mqtt not delivering", FaultRig.Problems(down), StringComparison.Ordinal);

            // Files moved to done/ from half a second after the loss was seen were committed during the outage.
            await DaemonHarness.WaitUntilAsync(() => d.Pipeline.InFlight == 0, "the pipeline caught up");
            await Task.Delay(500);
            var before = Directory.GetFiles(d.Done).Select(Path.GetFileName).ToHashSet();
            await Stream(6);
            await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(d.Done).Length == names.Count, "images served during the outage");
            committedWhileDown.AddRange(Directory.GetFiles(d.Done).Select(Path.GetFileName).Where(f => !before.Contains(f))!);
            await broker.StartAsync();
            await FaultRig.WaitForStatusAsync(d.Socket, (_, s) => s.GetProperty("output").GetProperty("connected").GetBoolean(), $"reconnected after outage {bounce}");
        }

        await Stream(12);
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == names.Count, "every image's result", 60_000);
        var (code, after) = await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() == 0,
            "healthy with an empty outbox after the last outage");
        Assert.Equal(names.Count, after.GetProperty("counts").GetProperty("processed").GetInt64());
        Assert.Equal(0, after.GetProperty("output").GetProperty("outboxDepth").GetInt64());
        await Task.Delay(500);

        var results = floor.Results;
        FaultRig.AssertEachImageOnce(results, names);
        Assert.True(committedWhileDown.Count >= 18, $"18 images were served during the outages ({committedWhileDown.Count})");
        Assert.All(results.Where(r => committedWhileDown.Contains(r.Json.GetProperty("image").GetProperty("id").GetString()!)),
            r => Assert.True(r.Json.GetProperty("historical").GetBoolean()));
        // One session, seq 1..N without gaps, first arrivals in commit order.
        var firstSeq = results.Select(r => r.Json.GetProperty("seq").GetInt32()).Distinct().ToList();
        Assert.Equal(Enumerable.Range(1, names.Count), firstSeq);
        // The floor sees each outage: the loss (queued at that moment, so it arrives after the reconnect, historical),
        // then the reconnect with how long it lasted and the backlog.
        var reconnects = floor.Events("broker_connected").Select(e => e.Json.GetProperty("message_id").GetString()).Distinct().Count();
        Assert.True(reconnects >= 3, $"{reconnects} broker_connected events");
        Assert.True(floor.Events("broker_disconnected").All(e => e.Json.GetProperty("historical").GetBoolean()));
        Assert.True(floor.Events("broker_disconnected").Select(e => e.Json.GetProperty("message_id").GetString()).Distinct().Count() >= 3);
        // The retained status follows the verdict (republished at the next status tick after it changed).
        await DaemonHarness.WaitUntilAsync(() => floor.Statuses[^1].Json.GetProperty("health").GetString() == "healthy", "the retained status healthy again");
    }

    [Fact]
    public async Task Run_NetworkPartitionThenHealOrReset_DetectsDeadLinkBuffersAndRecovers()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        await using var proxy = new PartitionProxy(broker.Host, broker.Port);
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, FaultRig.ViaBroker(broker.Host, proxy.Port));
        var images = TestPaths.SampleImages("val", perLeaf: 2).Take(30).ToList();
        var names = new List<string>();
        // Connected first: results committed before the first connect through the proxy are (rightly) replays.
        await DaemonHarness.WaitUntilAsync(() => d.Status.Snapshot().Output.Connected, "connected through the proxy");
        names.AddRange(d.Drop(images.Take(10), "a-"));
        await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == 10, "10 live results");
        Assert.All(floor.Results, r => Assert.False(r.Json.GetProperty("historical").GetBoolean()));
        var session = floor.Results[0].Json.GetProperty("session").GetString();

        var inPartition = new List<string>();
        foreach (var (phase, batch) in new[] { ("heal", images.Skip(10).Take(10)), ("reset", images.Skip(20).Take(10)) })
        {
            var willsBefore = floor.Statuses.Count(s => s.State == "offline");
            proxy.Partition();
            var dropped = d.Drop(batch, phase + "-");
            names.AddRange(dropped);
            inPartition.AddRange(dropped);

            // Nothing refuses or closes: the daemon must find out by itself (keep-alive, PUBACK timeout) and keep serving.
            var (code, down) = await FaultRig.WaitForStatusAsync(d.Socket,
                (_, s) => !s.GetProperty("output").GetProperty("connected").GetBoolean() && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() >= 10,
                $"dead link detected ({phase})");
            Assert.Equal(1, code);
            Assert.Contains("output mqtt not delivering", FaultRig.Problems(down), StringComparison.Ordinal);
            await DaemonHarness.WaitUntilAsync(() => dropped.All(n => File.Exists(Path.Combine(d.Done, n))), "partitioned images served and done");
            // The broker also noticed (1.5 x keep-alive) and published the will: the floor sees the node offline.
            await DaemonHarness.WaitUntilAsync(() => floor.Statuses.Count(s => s.State == "offline") > willsBefore, "the last will on the floor");
            var will = floor.Statuses.Last(s => s.State == "offline");
            Assert.Equal("connection_lost", will.Json.GetProperty("reason").GetString());
            Assert.Equal(session, will.Json.GetProperty("session").GetString());

            if (phase == "heal")
            {
                proxy.Heal();
            }
            else
            {
                proxy.HealByClosing();
            }

            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages == names.Count, $"the partitioned results after {phase}");
            await FaultRig.WaitForStatusAsync(d.Socket, (c, s) => c == 0 && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() == 0,
                $"healthy after {phase}");
            await DaemonHarness.WaitUntilAsync(() => floor.Statuses[^1].State == "online", $"online again after {phase}");
        }

        await Task.Delay(500);
        FaultRig.AssertEachImageOnce(floor.Results, names);
        Assert.All(floor.Results.Where(r => inPartition.Contains(r.Json.GetProperty("image").GetProperty("id").GetString()!)),
            r => Assert.True(r.Json.GetProperty("historical").GetBoolean()));
        Assert.Equal(session, floor.Statuses[^1].Json.GetProperty("session").GetString()); // same run: a link loss, not a crash
        Assert.True(floor.Events("broker_connected").Count >= 2);
    }
}
