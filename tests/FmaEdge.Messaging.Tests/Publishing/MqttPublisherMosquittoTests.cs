using System.Text.Json.Nodes;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Publishing;

/// <summary>The publisher against a real mosquitto, including outages made by stopping and restarting it.</summary>
public sealed class MqttPublisherMosquittoTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static ModelMessage Model() => new()
    {
        Id = Samples.Model.Id,
        Version = Samples.Model.Version,
        Sha256 = Samples.Model.Sha256,
        Architecture = "convnext_atto",
        ExecutionProvider = "CPU",
        ProviderNotes = ["TensorRT: not available on this machine", "CUDA: no GPU"],
        Levels = Samples.Tree.Levels.Select(l => l.Name).ToList(),
        Thresholds = [0.5, 0.5, 0.5],
        Temperatures = [1, 1, 1],
        TopK = 3,
        InputWidth = 112,
        InputHeight = 112,
        Taxonomy = JsonNode.Parse(FmaEdge.Core.Taxonomy.TaxonomyLoader.ToJson(Samples.Tree)),
        LoadedAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task CommitResult_BrokerUp_ResultStatusModelAndEventArriveWithAllFields()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        using var dir = new TempFolder("pub");
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        await using var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox.db"), "orin-01"), "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);
        await pub.SetModelAsync(Model(), CancellationToken.None);
        await pub.SetHealthAsync("healthy", CancellationToken.None);

        var result = Samples.Result("line-1", 0);
        var commit = pub.CommitResult(result, "good_0001.png|4183|638680000000000000");
        var ev = pub.PublishEvent(EventKinds.BadImage, EventSeverity.Warning, "cannot decode image: truncated", "line-1",
            new JsonObject { ["subject"] = "/data/in/broken.png", ["reason"] = "truncated" });

        await sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/orin-01/line-1/result") && m.Any(x => x.Topic == "fma/orin-01/events" && x.Payload.Contains("bad_image"))
            && m.Any(x => x.Topic == "fma/orin-01/model") && m.Any(x => x.Topic == "fma/orin-01/status" && x.Payload.Contains("healthy")), Long, "result, event, model, status");

        Assert.Equal(CommitStatus.Enqueued, commit.Status);
        var got = sub.On("/line-1/result").Single();
        var j = got.Json;
        Assert.Equal(commit.MessageId, j["message_id"]!.GetValue<string>());
        Contract.ResultMessageTests.AssertUuidV7(commit.MessageId);
        Contract.ResultMessageTests.AssertUuidV7(pub.Session);
        Assert.Equal(1, commit.Seq);
        Assert.Equal(pub.Session, j["session"]!.GetValue<string>());
        Assert.Equal(1, j["seq"]!.GetValue<long>());
        Assert.Equal("orin-01", j["node"]!.GetValue<string>());
        Assert.Equal("line-1", j["source"]!.GetValue<string>());
        Assert.Equal(result.Image.Sha256, j["image"]!["sha256"]!.GetValue<string>());
        Assert.Equal(new FileInfo(Samples.Images[0]).Length, j["image"]!["bytes"]!.GetValue<long>());
        Assert.Equal(Samples.Model.Version, j["model"]!["version"]!.GetValue<string>());
        Assert.Equal(Samples.Model.Sha256, j["model"]!["sha256"]!.GetValue<string>());
        Assert.Equal(3, j["levels"]!.AsArray().Count);
        Assert.Equal(3, j["levels"]![2]!["top_k"]!.AsArray().Count);
        Assert.Equal(result.Answer.Path, j["answer"]!["path"]!.GetValue<string>());
        Assert.Equal(result.Coarse.Depth, j["coarse"]!["depth"]!.GetValue<int>());
        Assert.Equal(3.75, j["latency_ms"]!["infer"]!.GetValue<double>());
        Assert.False(j["historical"]!.GetValue<bool>());
        Assert.False(j["duplicate"]!.GetValue<bool>());
        var published = DateTimeOffset.Parse(j["published_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var enqueued = DateTimeOffset.Parse(j["enqueued_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(published >= enqueued);
        Assert.False(got.Retain);

        var evGot = sub.On("/events").Single(x => x.Payload.Contains("bad_image")).Json;
        Assert.Equal(ev.MessageId, evGot["message_id"]!.GetValue<string>());
        Contract.ResultMessageTests.AssertUuidV7(ev.MessageId);
        Assert.True(string.CompareOrdinal(commit.MessageId, ev.MessageId) < 0, "ids follow commit order");
        Assert.Equal("/data/in/broken.png", evGot["details"]!["subject"]!.GetValue<string>());
        Assert.Equal("truncated", evGot["details"]!["reason"]!.GetValue<string>());

        var status = sub.On("/status").Last().Json;
        Assert.Equal("online", status["state"]!.GetValue<string>());
        Assert.Equal("0.1.0", status["version"]!.GetValue<string>());
        Assert.Equal(pub.Session, status["session"]!.GetValue<string>());
        Assert.Equal(Samples.Model.Id, status["model"]!["id"]!.GetValue<string>());
        Assert.Equal("healthy", status["health"]!.GetValue<string>());
        Assert.Equal("CPU", sub.On("/model").Last().Json["execution_provider"]!.GetValue<string>());

        // A late subscriber still learns status and model: both are retained.
        await using var late = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/orin-01/+", persistentSession: false);
        await late.WaitUntilAsync(m => m.Any(x => x.Topic.EndsWith("/status", StringComparison.Ordinal) && x.Retain)
            && m.Any(x => x.Topic.EndsWith("/model", StringComparison.Ordinal) && x.Retain), Long, "retained status and model");

        var health = pub.Health;
        Assert.Equal(ConnectionState.Connected, health.State);
        await Wait.UntilAsync(() => pub.Health.Outbox.Depth == 0, Long, "outbox drained");
        Assert.True(pub.Health.Acked >= 2);

        ExamplePayloads.Save("result.json", got.Payload);
        ExamplePayloads.Save("event.json", sub.On("/events").First(x => x.Payload.Contains("bad_image")).Payload);
        ExamplePayloads.Save("status-online.json", sub.On("/status").Last().Payload);
        ExamplePayloads.Save("model.json", sub.On("/model").Last().Payload);
        ExamplePayloads.Save("event-broker_connected.json", sub.On("/events").First(x => x.Payload.Contains("broker_connected")).Payload);
        Assert.True(await pub.PublishStatsAsync(new StatsMessage { ImagesProcessed = 1, Health = "healthy" }, CancellationToken.None));
        await sub.WaitUntilAsync(m => m.Any(x => x.Topic.EndsWith("/stats", StringComparison.Ordinal)), Long, "stats");
        ExamplePayloads.Save("stats.json", sub.On("/stats").Last().Payload);
    }

    [Fact]
    public async Task StopAsync_Clean_RetainedStatusBecomesOfflineStopped()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        using var dir = new TempFolder("pub");
        var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox.db")), "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);
        for (var i = 0; i < 5; i++)
        {
            pub.CommitResult(Samples.Result("cam", i));
        }

        await pub.StopAsync(CancellationToken.None);
        Assert.Equal(ConnectionState.Stopped, pub.State);
        Assert.Equal(0, pub.Health.Outbox.Depth); // drained before disconnecting
        var session = pub.Session;
        await pub.DisposeAsync();

        await using var late = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/test-node/status", persistentSession: false);
        await late.WaitUntilAsync(m => m.Count > 0, Long, "retained status");
        var s = late.Messages.Single().Json;
        Assert.Equal("offline", s["state"]!.GetValue<string>());
        Assert.Equal("stopped", s["reason"]!.GetValue<string>());
        Assert.Equal(session, s["session"]!.GetValue<string>());
        ExamplePayloads.Save("status-offline-stopped.json", late.Messages.Single().Payload);
    }

    [Fact]
    public async Task Start_BrokerDownThenUp_NothingLostAndReplaysHistorical()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        await broker.StopAsync();
        using var dir = new TempFolder("pub");
        await using var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox.db")), "0.1.0");
        var states = new List<ConnectionState>();
        pub.StateChanged += (_, c) =>
        {
            lock (states)
            {
                states.Add(c.State);
            }
        };
        await pub.StartAsync(CancellationToken.None);
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            ids.Add(pub.CommitResult(Samples.Result("cam", i)).MessageId);
        }

        await Wait.UntilAsync(() => pub.Health.Connects == 0 && pub.Health.LastError is not null, Long, "a failed connect");
        Assert.NotEqual(ConnectionState.Connected, pub.State);
        Assert.Equal(20, pub.Health.Outbox.Depth);
        Assert.NotNull(pub.Health.Outbox.OldestAgeSeconds);
        await pub.SetModelAsync(Model(), CancellationToken.None); // while down: goes out at the connect

        await broker.StartAsync();
        await sub.WaitUntilAsync(m => m.Count(x => x.Topic.EndsWith("/result", StringComparison.Ordinal)) >= 20, Long, "20 results");
        var results = sub.On("/result").ToList();
        Assert.Equal(ids, results.Select(r => r.MessageId).Distinct());
        Assert.All(results, r => Assert.True(r.Historical()));
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), results.Select(r => r.Seq()).Distinct());
        await Wait.UntilAsync(() => pub.Health.Replayed >= 20, Long, "replayed counter");
        lock (states)
        {
            Assert.Contains(ConnectionState.Disconnected, states);
            Assert.Equal(ConnectionState.Connected, states[^1]);
        }

        await sub.WaitUntilAsync(m => m.Any(x => x.Topic.EndsWith("/model", StringComparison.Ordinal))
            && m.Any(x => x.Topic.EndsWith("/status", StringComparison.Ordinal) && x.Payload.Contains(Samples.Model.Id, StringComparison.Ordinal)),
            Long, "model and status naming it after the connect");

        // Once connected, new results are live again.
        await Wait.ConnectedAsync(pub);
        var live = pub.CommitResult(Samples.Result("cam", 20)).MessageId;
        await sub.WaitUntilAsync(m => m.Any(x => x.MessageId == live), Long, "live result");
        Assert.False(sub.On("/result").Single(x => x.MessageId == live).Historical());
    }

    [Fact]
    public async Task CommitResult_BrokerRestartedMidStreamThreeTimes_EveryMessageArrivesInOrder()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        using var dir = new TempFolder("pub");
        await using var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox.db")), "0.1.0");
        var connects = 0;
        using var watchCts = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            await foreach (var c in pub.WatchStateAsync(watchCts.Token))
            {
                if (c.State == ConnectionState.Connected)
                {
                    Interlocked.Increment(ref connects);
                }
            }
        });
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);

        // Stream until every outage is over (each one mid-stream), then a little more.
        var outagesDone = false;
        var ids = new List<string>();
        var producer = Task.Run(async () =>
        {
            var extra = 50;
            for (var i = 0; !Volatile.Read(ref outagesDone) || extra-- > 0; i++)
            {
                var source = i % 2 == 0 ? "cam-a" : "cam-b";
                ids.Add(pub.CommitResult(Samples.Result(source, i)).MessageId);
                await Task.Delay(8);
            }
        });

        for (var outage = 0; outage < 3; outage++)
        {
            await Task.Delay(400); // streaming live
            await broker.StopAsync();
            await Wait.UntilAsync(() => pub.State != ConnectionState.Connected, Long, "publisher notices the outage");
            await Task.Delay(300); // results pile up in the outbox
            await broker.StartAsync();
            await Wait.ConnectedAsync(pub, 30); // each outage ends in its own reconnect
        }

        Volatile.Write(ref outagesDone, true);
        await producer;
        var n = ids.Count;
        await sub.WaitUntilAsync(m => m.Where(x => x.Topic.EndsWith("/result", StringComparison.Ordinal)).Select(x => x.MessageId).Distinct().Count() >= n,
            TimeSpan.FromSeconds(60), $"{n} distinct results");
        await Wait.UntilAsync(() => pub.Health.Outbox.Depth == 0, Long, "outbox drained");

        var results = sub.On("/result").ToList();
        var firstArrivals = results.DistinctBy(r => r.MessageId).ToList();
        Assert.True(n > 150, $"only {n} results streamed");
        Assert.Equal(ids.Order(StringComparer.Ordinal), firstArrivals.Select(r => r.MessageId!).Order(StringComparer.Ordinal));
        foreach (var source in new[] { "cam-a", "cam-b" })
        {
            var seqs = firstArrivals.Where(r => r.Topic.Contains(source, StringComparison.Ordinal)).Select(r => r.Seq()).ToList();
            Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs); // order preserved per source, no gap
        }

        // A second copy is only ever a redelivery the protocol allows: a broker DUP or our own historical replay.
        var duplicates = results.GroupBy(r => r.MessageId).Where(g => g.Count() > 1).SelectMany(g => g.Skip(1)).ToList();
        Assert.All(duplicates, d => Assert.True(d.Dup || d.Historical(), "unexplained duplicate " + d.MessageId));
        Assert.Contains(results, r => r.Historical());
        Assert.True(pub.Health.Replayed > 0);
        Assert.True(Volatile.Read(ref connects) >= 4, $"connects seen: {connects}");
        Assert.Contains(sub.On("/events"), e => e.Payload.Contains("broker_disconnected") && e.Historical());
        ExamplePayloads.Save("event-broker_disconnected.json", sub.On("/events").First(e => e.Payload.Contains("broker_disconnected")).Payload);
        await watchCts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => watcher);
    }

    [Fact]
    public async Task Restart_SameOutboxWithPending_ReplaysAsHistoricalAndRecognisesPublishedFiles()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        await broker.StopAsync();
        using var dir = new TempFolder("pub");
        var db = dir.File("state/outbox.db");

        var first = new MqttPublisher(Samples.Options(broker.Port, db), "0.1.0");
        await first.StartAsync(CancellationToken.None);
        var ids = Enumerable.Range(0, 10).Select(i => first.CommitResult(Samples.Result("folder", i), $"img-{i}.png").MessageId).ToList();
        var firstSession = first.Session;
        await first.DisposeAsync(); // broker still down: everything stays in the outbox

        await using var second = new MqttPublisher(Samples.Options(broker.Port, db), "0.1.0");
        Assert.NotEqual(firstSession, second.Session);
        Assert.Equal(10, second.Health.Outbox.Depth);
        Assert.Equal(ids[3], second.FindPublished("folder", "img-3.png"));
        var again = second.CommitResult(Samples.Result("folder", 3), "img-3.png");
        Assert.Equal(CommitStatus.DuplicateSkipped, again.Status);
        var marked = second.CommitResult(Samples.Result("folder", 4), "img-4.png", DuplicatePolicy.PublishMarked);
        Assert.Equal(CommitStatus.DuplicateEnqueued, marked.Status);

        await second.StartAsync(CancellationToken.None);
        await broker.StartAsync();
        await sub.WaitUntilAsync(m => m.Where(x => x.Topic.EndsWith("/result", StringComparison.Ordinal)).Select(x => x.MessageId).Distinct().Count() >= 11,
            Long, "11 results");
        var results = sub.On("/result").DistinctBy(r => r.MessageId).ToList();
        Assert.Equal(ids.Append(marked.MessageId), results.Select(r => r.MessageId));
        Assert.All(results.Take(10), r =>
        {
            Assert.True(r.Historical());
            Assert.Equal(firstSession, r.Json["session"]!.GetValue<string>());
        });
        var dup = results[10].Json;
        Assert.True(dup["duplicate"]!.GetValue<bool>());
        Assert.Equal(ids[4], dup["duplicate_of"]!.GetValue<string>());
        ExamplePayloads.Save("result-duplicate.json", results[10].Payload);
    }

    [Fact]
    public async Task CommitResult_OutboxCapHitWhileBrokerDown_DropsOldestResultsAndEmitsOutboxFull()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        await broker.StopAsync();
        using var dir = new TempFolder("pub");
        var options = Samples.Options(broker.Port, dir.File("outbox.db"));
        options.OutboxMaxMessages = 10;
        await using var pub = new MqttPublisher(options, "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        for (var i = 0; i < 30; i++)
        {
            pub.CommitResult(Samples.Result("cam", i));
        }

        var h = pub.Health;
        Assert.Equal(10, h.Outbox.Depth);
        Assert.Equal(21, h.DroppedByCap); // 30 results + 1 outbox_full event into 10 slots
        await broker.StartAsync();
        await sub.WaitUntilAsync(m => m.Any(x => x.Payload.Contains("\"outbox_full\"")) && m.Count(x => x.Topic.EndsWith("/result", StringComparison.Ordinal)) >= 8,
            Long, "outbox_full event and 8 results");
        var seqs = sub.On("/result").Select(r => r.Seq()).Distinct().ToList();

        // The broker_connected event queued at reconnect took one more slot: the 8 newest results survive, in order.
        Assert.Equal(Enumerable.Range(23, 8).Select(i => (long)i), seqs);
        var full = sub.On("/events").First(x => x.Payload.Contains("\"outbox_full\"")).Json;
        Assert.Equal("warning", full["severity"]!.GetValue<string>());
        Assert.True(full["details"]!["dropped"]!.GetValue<long>() >= 1);
        Assert.Equal(10, full["details"]!["max_messages"]!.GetValue<long>());
        ExamplePayloads.Save("event-outbox_full.json", sub.On("/events").First(x => x.Payload.Contains("\"outbox_full\"")).Payload);
    }
}
