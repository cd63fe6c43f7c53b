using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FmaEdge.Daemon.Tests.Reliability;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>The whole daemon against a real mosquitto: real images, the trainer-produced model, the MQTT sink with its
/// durable outbox, and a real subscriber.</summary>
public sealed class MqttEndToEndTests : IDisposable
{
    private readonly TempFolder _tmp = new("e2e");

    public void Dispose() => _tmp.Dispose();

    private static Action<Dictionary<string, string?>> ViaBroker(MosquittoBroker broker) => s =>
    {
        s["FmaEdge:Output:Type"] = "mqtt";
        s.Remove("FmaEdge:Output:Path");
        s["FmaEdge:Mqtt:Host"] = broker.Host;
        s["FmaEdge:Mqtt:Port"] = broker.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["FmaEdge:Mqtt:Embedded:Enabled"] = "false";
        // A fixed reconnect delay lets the test's subscriber reconnect first after an outage.
        s["FmaEdge:Mqtt:ReconnectMinSeconds"] = "2";
        s["FmaEdge:Mqtt:ReconnectMaxSeconds"] = "2";
    };

    [Fact]
    public async Task Start_InboxAlreadyFull_BrokerUp_EveryResultLive()
    {
        // docs/mqtt.md: what waits in a folder at start is published live when the broker is up. The daemon opens its
        // sources once the publisher's first connection attempt ended; before that fix the first results of a full
        // inbox were stored while the publisher was still connecting and went out flagged historical.
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await Subscriber.ConnectAsync(broker);
        var images = TestPaths.SampleImages("val");
        Directory.CreateDirectory(Path.Combine(_tmp.Path, "inbox"));
        DaemonHarness.DropInto(Path.Combine(_tmp.Path, "inbox"), images);
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, ViaBroker(broker));
        Assert.True(daemon.Status.Snapshot().Output.Connected, "connected when start-up returned");

        await DaemonHarness.WaitUntilAsync(() => sub.Results.Count >= images.Count, $"{images.Count} results over MQTT");
        Assert.All(sub.Results, r => Assert.False(r.GetProperty("historical").GetBoolean(), r.GetProperty("image").GetProperty("id").GetString()));
    }

    [Fact]
    public async Task Run_SparkplugEnabled_EveryResultAlsoAsDdata_StatsAndStatusShowIt()
    {
        // Configuration as docs/configuration.md and docs/mqtt.md give it: the sources become devices, every result is
        // a DDATA after the births, the node's figures go out as NDATA, and stats/status carry the Sparkplug state.
        await using var broker = await MosquittoBroker.StartNewAsync();
        var sparkplug = new ConcurrentQueue<(string Topic, byte[] Bytes)>();
        JsonElement? stats = null;
        using var client = new MqttClientFactory().CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e =>
        {
            if (e.ApplicationMessage.Topic.EndsWith("/stats", StringComparison.Ordinal))
            {
                stats = JsonDocument.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload)).RootElement.Clone();
            }
            else
            {
                sparkplug.Enqueue((e.ApplicationMessage.Topic, System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload)));
            }

            return Task.CompletedTask;
        };
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port).Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter("spBv1.0/#").WithTopicFilter("fma/test-node/stats").Build());
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            ViaBroker(broker)(s);
            s["FmaEdge:Mqtt:Sparkplug:Enabled"] = "true";
            s["FmaEdge:Mqtt:Sparkplug:GroupId"] = "plant-1";
            s["FmaEdge:Status:StatsSeconds"] = "1";
        });
        var images = TestPaths.SampleImages("val").Take(6).ToList();
        daemon.Drop(images);

        await DaemonHarness.WaitUntilAsync(() => sparkplug.Count(m => m.Topic.Contains("/DDATA/", StringComparison.Ordinal)) >= images.Count,
            $"{images.Count} DDATA");
        await DaemonHarness.WaitUntilAsync(() => stats?.TryGetProperty("sparkplug", out var sp) == true && sp.GetProperty("data_messages").GetInt64() >= images.Count,
            "stats with the Sparkplug figures");
        var messages = sparkplug.ToList();
        Assert.Equal("spBv1.0/plant-1/NBIRTH/test-node", messages[0].Topic);
        Assert.Equal("spBv1.0/plant-1/DBIRTH/test-node/line1", messages[1].Topic);
        var nbirth = FmaEdge.Messaging.Sparkplug.Protobuf.Payload.Parser.ParseFrom(messages[0].Bytes);
        Assert.Equal(64, nbirth.Metrics.Single(m => m.Name == "Model/Sha256").StringValue.Length);
        var dbirth = FmaEdge.Messaging.Sparkplug.Protobuf.Payload.Parser.ParseFrom(messages[1].Bytes);
        var labelAlias = dbirth.Metrics.Single(m => m.Name == "Answer/Path").Alias;
        var data = messages.Where(m => m.Topic == "spBv1.0/plant-1/DDATA/test-node/line1")
            .Select(m => FmaEdge.Messaging.Sparkplug.Protobuf.Payload.Parser.ParseFrom(m.Bytes)).ToList();
        Assert.Equal(images.Count, data.Count);
        Assert.All(data, d => Assert.Equal(3, d.Metrics.Single(m => m.Alias == labelAlias).StringValue.Split('/').Length));
        await DaemonHarness.WaitUntilAsync(() => sparkplug.Any(m => m.Topic == "spBv1.0/plant-1/NDATA/test-node"), "NDATA with the node's figures");

        // The fields docs/mqtt.md's table promises, read from the doc (the last_error pair appears only after an error).
        var documented = DocumentedSparkplugFields();
        Assert.Contains("last_error_at", documented);
        var sent = stats!.Value.GetProperty("sparkplug").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(documented.Except(["last_error", "last_error_at"]).Order(), sent.Except(["last_error", "last_error_at"]).Order());
        Assert.Empty(sent.Except(documented));
        Assert.Equal("online", stats.Value.GetProperty("sparkplug").GetProperty("state").GetString());
        Assert.Equal("plant-1/test-node", stats.Value.GetProperty("sparkplug").GetProperty("edge_node").GetString());

        var output = daemon.Status.Snapshot().Output;
        Assert.NotNull(output.Sparkplug);
        Assert.True(output.Sparkplug.Connected);
        Assert.Equal("sparkplug", output.Sparkplug.Kind);
        Assert.Equal(0, output.Sparkplug.OutboxDepth);
    }

    [Fact]
    public async Task Start_BrokerDown_SourcesOpenAndResultsWaitAsHistorical()
    {
        // The other half of the rule: a broker that refuses connections does not hold start-up back; the results are
        // stored and go out as historical once it comes. The floor's persistent session keeps what arrives before it
        // reconnects.
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        await broker.StopAsync();
        var images = TestPaths.SampleImages("val").Take(5).ToList();
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, ViaBroker(broker));
        daemon.Drop(images);
        await DaemonHarness.WaitUntilAsync(() => Directory.Exists(daemon.Done) && Directory.GetFiles(daemon.Done).Length == images.Count,
            "every image committed and moved to done/ while the broker is down");
        Assert.False(daemon.Status.Snapshot().Output.Connected);

        await broker.StartAsync();
        await DaemonHarness.WaitUntilAsync(() => floor.Results.Count >= images.Count, $"{images.Count} results after the broker came");
        Assert.All(floor.Results, r => Assert.True(r.Json.GetProperty("historical").GetBoolean()));
    }

    [Fact]
    public async Task Run_FolderOfRealImages_OneResultPerImageWithAllFieldsOverMqtt()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await Subscriber.ConnectAsync(broker);
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, ViaBroker(broker));
        var images = TestPaths.SampleImages("val"); // one real image per leaf (21)
        var names = daemon.Drop(images);

        await DaemonHarness.WaitUntilAsync(() => sub.Results.Count >= images.Count, $"{images.Count} results over MQTT");
        await Task.Delay(500); // nothing more may arrive

        var results = sub.Results.ToList();
        Assert.Equal(images.Count, results.Count);
        Assert.Equal(images.Count, results.Select(r => r.GetProperty("message_id").GetString()).Distinct().Count());
        Assert.Equal(Enumerable.Range(1, images.Count), results.Select(r => r.GetProperty("seq").GetInt32()).Order());
        var shaByName = images.Select((p, i) => (names[i], Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p))))).ToDictionary();
        foreach (var r in results)
        {
            Assert.Equal("test-node", r.GetProperty("node").GetString());
            Assert.Equal("line1", r.GetProperty("source").GetString());
            Assert.False(string.IsNullOrEmpty(r.GetProperty("session").GetString()));
            Assert.True(r.GetProperty("captured_at").GetDateTimeOffset() <= r.GetProperty("published_at").GetDateTimeOffset());
            var image = r.GetProperty("image");
            Assert.Equal(shaByName[image.GetProperty("id").GetString()!], image.GetProperty("sha256").GetString());
            Assert.Equal(64, r.GetProperty("model").GetProperty("sha256").GetString()!.Length);
            var levels = r.GetProperty("levels");
            Assert.Equal(3, levels.GetArrayLength());
            foreach (var l in levels.EnumerateArray())
            {
                Assert.False(string.IsNullOrEmpty(l.GetProperty("label").GetString()));
                Assert.InRange(l.GetProperty("confidence").GetDouble(), 0, 1);
                Assert.True(l.GetProperty("top_k").GetArrayLength() >= 3);
            }

            Assert.Equal(3, r.GetProperty("answer").GetProperty("nodes").GetArrayLength());
            Assert.InRange(r.GetProperty("coarse").GetProperty("depth").GetInt32(), 0, 3);
            var latency = r.GetProperty("latency_ms");
            foreach (var stage in new[] { "decode", "preprocess", "infer", "total" })
            {
                Assert.True(latency.GetProperty(stage).GetDouble() >= 0, stage);
            }

            Assert.False(r.GetProperty("historical").GetBoolean());
        }

        // The first level is right for most real images with the shipped model (chance is 1/3).
        var rightL1 = results.Count(r => r.GetProperty("answer").GetProperty("nodes")[0].GetProperty("path").GetString() ==
            images.Single(p => names[images.ToList().IndexOf(p)] == r.GetProperty("image").GetProperty("id").GetString())
                .Split(Path.DirectorySeparatorChar)[^4]);
        Assert.True(rightL1 >= images.Count * 0.8, $"level 1 right for {rightL1}/{images.Count}");
        Assert.Contains(sub.Retained, m => m.Topic == "fma/test-node/status" && m.Payload.Contains("\"online\"", StringComparison.Ordinal));
        Assert.Contains(sub.Retained, m => m.Topic == "fma/test-node/model");
    }

    [Fact]
    public async Task HotSwap_UnderSteadyStreamOverMqtt_LosesNothingAndSwapsOnce()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await Subscriber.ConnectAsync(broker);
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, ViaBroker(broker)); // serves the trained model
        var shaA = d.Models.Current!.Classifier.Model.Sha256;
        var bytesB = TestModels.CreateBytes(seed: 2, size: 48); // another valid model with another input size
        var shaB = Convert.ToHexStringLower(SHA256.HashData(bytesB));
        var images = TestPaths.SampleImages("val", perLeaf: 3).Take(60).ToList();
        // A steady stream, held at two points so the test does not depend on the machine's speed: image 20 waits for a
        // result from model A, image 40 for the swap, so results from both models are certain and the swap happens while
        // images are queued.
        var swapped = false;
        var stream = Task.Run(async () =>
        {
            for (var i = 0; i < images.Count; i++)
            {
                if (i == 20)
                {
                    await DaemonHarness.WaitUntilAsync(() => sub.Results.Count > 0, "a result from model A", 60_000);
                }
                else if (i == 40)
                {
                    await DaemonHarness.WaitUntilAsync(() => Volatile.Read(ref swapped), "the swap to model B", 60_000);
                }

                d.Drop([images[i]], $"{i:D3}-");
                await Task.Delay(40);
            }
        });

        await DaemonHarness.WaitUntilAsync(() => sub.Results.Count > 0, "a result from model A", 60_000);
        // Dropped the way a deployment tool should: written under a temporary name, then renamed in.
        var tmp = Path.Combine(d.ModelsDir, "model-b.onnx.part");
        await File.WriteAllBytesAsync(tmp, bytesB);
        File.Move(tmp, Path.Combine(d.ModelsDir, "model-b.onnx"));
        await DaemonHarness.WaitUntilAsync(() => d.Models.Current!.Classifier.Model.Sha256 == shaB, "the swap to model B");
        Volatile.Write(ref swapped, true);
        await stream;

        await DaemonHarness.WaitUntilAsync(() => sub.Results.Count >= images.Count, "every image's result over MQTT", 60_000);
        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.InFlight == 0 && d.Pipeline.Published == images.Count, "the pipeline to finish");

        var results = sub.Results.OrderBy(r => r.GetProperty("seq").GetInt32()).ToList();
        Assert.Equal(images.Count, results.Count);
        Assert.Equal(images.Count, results.Select(r => r.GetProperty("image").GetProperty("id").GetString()).Distinct().Count());
        var shas = results.Select(r => r.GetProperty("model").GetProperty("sha256").GetString()).ToList();
        Assert.All(shas, x => Assert.Contains(x, new[] { shaA, shaB }));
        // One atomic swap: every result after the first from B is from B.
        var firstB = shas.IndexOf(shaB);
        Assert.True(firstB > 0, "some images were classified before the swap and some after");
        Assert.All(shas.Skip(firstB), x => Assert.Equal(shaB, x));
        Assert.Equal(1, d.Status.Snapshot().Model!.Swaps);
        Assert.Contains(sub.Retained, m => m.Topic == "fma/test-node/events" && m.Payload.Contains("model_swapped", StringComparison.Ordinal));
    }

    /// <summary>The backticked names in the first column of docs/mqtt.md's "`sparkplug` field" table.</summary>
    private static List<string> DocumentedSparkplugFields()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "mqtt.md"));
        var table = doc[doc.IndexOf("| `sparkplug` field |", StringComparison.Ordinal)..];
        var rows = table.Split('\n').Skip(2).TakeWhile(l => l.StartsWith('|')).ToList();
        var names = rows.SelectMany(r => System.Text.RegularExpressions.Regex.Matches(r.Split('|')[1], "`([a-z_]+)`").Select(m => m.Groups[1].Value)).ToList();
        Assert.True(names.Count >= 10, $"docs/mqtt.md sparkplug table has {names.Count} fields");
        return names;
    }
}
