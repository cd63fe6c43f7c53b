using System.Text;
using System.Text.Json.Nodes;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Sparkplug;
using FmaEdge.Messaging.Sparkplug.Protobuf;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using Google.Protobuf;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Tests.Sparkplug;

/// <summary>Sparkplug B against a real mosquitto, decoded by protoc with the specification's schema, and the sequence
/// rules of Sparkplug 3.0: bdSeq pairs NBIRTH with NDEATH, seq runs 0..255 and wraps, DBIRTH before DDATA, rebirth
/// on NCMD, store and forward (is_historical) across a broker kill and a primary host going away.</summary>
public sealed class SparkplugPublisherTests
{
    private const string Group = "plant-1";
    private const string Node = "orin-01";
    private const string Host = "scada-1";
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(40);

    [Fact]
    public async Task FullSequence_Rebirth_BrokerKill_HostOffline_KeepsEveryRuleAndEveryResult()
    {
        // No broker persistence: after the kill nothing is retained, so the node must wait for the host's STATE.
        await using var broker = await MosquittoBroker.StartNewAsync(new MosquittoSettings(Persistence: false));
        using var dir = new TempFolder("spb");
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "#", persistentSession: false);
        await PublishAsync(broker, $"spBv1.0/STATE/{Host}", State(true, 1), retain: true);

        var options = Options(broker.Port, dir.File("outbox.db"), primaryHost: Host);
        await using var pub = new MqttPublisher(options, "0.9.0");
        await using var spb = new SparkplugPublisher(options, pub);
        spb.DeclareDevices(["line-1"]);
        spb.SetModel(Model());
        await pub.StartAsync(CancellationToken.None);
        await spb.StartAsync(CancellationToken.None);
        await sub.WaitUntilAsync(m => Count(m, "DBIRTH") == 1, Long, "first births");

        // 300 results: seq passes 255 and wraps to 0.
        var ids = new List<string>();
        for (var i = 0; i < 300; i++)
        {
            ids.Add(pub.CommitResult(Samples.Result("line-1", i)).MessageId);
        }

        await sub.WaitUntilAsync(m => Count(m, "DDATA") == 300, Long, "300 DDATA");

        // A host asks for a rebirth.
        var rebirth = new Payload { Timestamp = Now() };
        rebirth.Metrics.Add(new Payload.Types.Metric { Name = SparkplugMetrics.Rebirth, Datatype = (uint)DataType.Boolean, BooleanValue = true });
        await PublishAsync(broker, $"spBv1.0/{Group}/NCMD/{Node}", rebirth.ToByteArray(), retain: false);
        await sub.WaitUntilAsync(m => Count(m, "DBIRTH") == 2, Long, "rebirth");
        ids.Add(pub.CommitResult(Samples.Result("line-1", 300)).MessageId);
        await sub.WaitUntilAsync(m => Count(m, "DDATA") == 301, Long, "DDATA after the rebirth");

        // The broker is killed; results made meanwhile wait in the feed.
        await broker.KillAsync();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(pub.CommitResult(Samples.Result("line-1", 301 + i)).MessageId);
        }

        await broker.StartAsync();
        await Wait.UntilAsync(() => spb.Health.State == "waiting_for_host", Long, "node waiting for the primary host after the restart");
        await Wait.UntilAsync(() =>
        {
            PublishAsync(broker, "probe", [1], retain: false).GetAwaiter().GetResult(); // lost until the subscriber is back
            return sub.Messages.Any(x => x.Topic == "probe");
        }, Long, "subscriber back");
        await PublishAsync(broker, $"spBv1.0/STATE/{Host}", State(true, 2), retain: true);
        await sub.WaitUntilAsync(m => Count(m, "DDATA") == 306, Long, "the 5 stored results after the births");

        // The primary host goes offline: the node dies, stores, and births again when the host is back.
        await PublishAsync(broker, $"spBv1.0/STATE/{Host}", State(false, 3), retain: true);
        await sub.WaitUntilAsync(m => Count(m, "NDEATH") == 1, Long, "NDEATH when the host went offline");
        await Wait.UntilAsync(() => spb.Health.State == "waiting_for_host", Long, "node waiting for the host");
        ids.Add(pub.CommitResult(Samples.Result("line-1", 306)).MessageId);
        await Task.Delay(500);
        Assert.Equal(306, Count(sub.Messages, "DDATA"));
        await PublishAsync(broker, $"spBv1.0/STATE/{Host}", State(true, 4), retain: true);
        await sub.WaitUntilAsync(m => Count(m, "DDATA") == 307, Long, "the result stored while the host was away");

        await spb.StopAsync(CancellationToken.None);
        await sub.WaitUntilAsync(m => Count(m, "NDEATH") >= 2, Long, "NDEATH at a clean stop");

        var spMessages = sub.Messages.Where(m => m.Topic.StartsWith($"spBv1.0/{Group}/", StringComparison.Ordinal)).ToList();
        var decoded = spMessages.Select(m => (Type: m.Topic.Split('/')[2], Msg: m, P: Payload.Parser.ParseFrom(m.Bytes))).ToList();
        var births = decoded.Where(d => d.Type == "NBIRTH").ToList();
        Assert.Equal(4, births.Count); // start, rebirth, after the kill, after the host came back

        // seq: 0 at every NBIRTH, then +1 per message (DBIRTH, DDATA, NDATA) wrapping after 255; never in NDEATH or NCMD.
        ulong? previous = null;
        var wrapped = false;
        foreach (var (type, msg, p) in decoded.Where(d => d.Type is not ("NCMD" or "DCMD")))
        {
            if (type == "NDEATH")
            {
                Assert.False(p.HasSeq, "NDEATH must not carry seq");
                continue;
            }

            Assert.True(p.HasSeq, $"{msg.Topic} without seq");
            Assert.True(p.HasTimestamp, $"{msg.Topic} without timestamp");
            if (type == "NBIRTH")
            {
                Assert.Equal(0ul, p.Seq);
            }
            else
            {
                Assert.Equal((previous!.Value + 1) % 256, p.Seq);
                wrapped |= p.Seq == 0;
            }

            previous = p.Seq;
        }

        Assert.True(wrapped, "seq never wrapped from 255 to 0");

        // Every NBIRTH is followed by its DBIRTH before any data.
        for (var i = 0; i < decoded.Count; i++)
        {
            if (decoded[i].Type == "NBIRTH")
            {
                Assert.Equal("DBIRTH", decoded[i + 1].Type);
                Assert.EndsWith("/line-1", decoded[i + 1].Msg.Topic, StringComparison.Ordinal);
            }
        }

        // bdSeq: the rebirth repeats it; a new connection advances it; each NDEATH names the birth it ends.
        var bd = births.Select(b => BdSeq(b.P)).ToList();
        Assert.Equal(bd[0], bd[1]);
        Assert.NotEqual(bd[1], bd[2]);
        Assert.NotEqual(bd[2], bd[3]);
        var deaths = decoded.Where(d => d.Type == "NDEATH").Select(d => BdSeq(d.P)).ToList();
        Assert.Equal(bd[2], deaths[0]);
        Assert.All(deaths.Skip(1), d => Assert.Equal(bd[3], d));

        // Every result once, in commit order; the ones that waited are historical, the others are not.
        var data = decoded.Where(d => d.Type == "DDATA").ToList();
        var alias = AliasOf(decoded.First(d => d.Type == "DBIRTH").P, "Result/Message Id");
        Assert.Equal(ids, data.Select(d => d.P.Metrics.Single(m => m.Alias == alias).StringValue).ToList());
        Assert.All(data.Take(301), d => Assert.All(d.P.Metrics, m => Assert.False(m.IsHistorical)));
        Assert.All(data.Skip(301), d => Assert.All(d.P.Metrics, m => Assert.True(m.IsHistorical)));
        Assert.All(data, d => Assert.All(d.P.Metrics, m => Assert.False(m.HasName, "data metrics carry the alias only")));

        // QoS and retain as Sparkplug prescribes.
        Assert.All(spMessages, m => Assert.False(m.Retain, $"{m.Topic} retained"));
        Assert.All(decoded.Where(d => d.Type is "NBIRTH" or "DBIRTH" or "DDATA" or "NDATA"), d => Assert.Equal(0, d.Msg.Qos));
        Assert.All(decoded.Where(d => d.Type == "NDEATH"), d => Assert.Equal(1, d.Msg.Qos));

        // A decoder that is not ours reads the same thing with the specification's schema.
        var nbirth = await ProtocDecodeAsync(births[0].Msg.Bytes!);
        Assert.Contains("name: \"bdSeq\"", nbirth, StringComparison.Ordinal);
        Assert.Contains($"long_value: {bd[0]}", nbirth, StringComparison.Ordinal);
        Assert.Contains("name: \"Node Control/Rebirth\"", nbirth, StringComparison.Ordinal);
        Assert.Contains("boolean_value: false", nbirth, StringComparison.Ordinal);
        Assert.Contains("seq: 0", nbirth, StringComparison.Ordinal);
        Assert.Contains($"string_value: \"{Samples.Model.Sha256}\"", nbirth, StringComparison.Ordinal);
        var dbirth = await ProtocDecodeAsync(decoded.First(d => d.Type == "DBIRTH").Msg.Bytes!);
        foreach (var level in Samples.Tree.Levels)
        {
            Assert.Contains($"name: \"Levels/{level.Name}/Label\"", dbirth, StringComparison.Ordinal);
        }

        Assert.Contains("is_null: true", dbirth, StringComparison.Ordinal); // nothing classified yet
        var historical = await ProtocDecodeAsync(data[301].Msg.Bytes!);
        Assert.Contains($"string_value: \"{ids[301]}\"", historical, StringComparison.Ordinal);
        Assert.Contains("is_historical: true", historical, StringComparison.Ordinal);
        Assert.DoesNotContain("name:", historical, StringComparison.Ordinal);
        var death = await ProtocDecodeAsync(decoded.First(d => d.Type == "NDEATH").Msg.Bytes!);
        Assert.Contains($"long_value: {bd[2]}", death, StringComparison.Ordinal);
        Assert.DoesNotContain("seq:", death, StringComparison.Ordinal);
        Assert.Equal(0, spb.Health.Backlog);
        SaveExample("sparkplug-nbirth.txt", nbirth);
        SaveExample("sparkplug-ddata-historical.txt", historical);
        SaveExample("sparkplug-ndeath.txt", death);
    }

    // protoc's text of real payloads in artifacts/mqtt-examples, so docs/mqtt.md quotes real output.
    private static void SaveExample(string name, string text)
    {
        var dir = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts", "mqtt-examples")).FullName;
        File.WriteAllText(Path.Combine(dir, name), text);
    }

    [Fact]
    public async Task Will_IsTheNdeathOfTheCurrentBirth_AndBdSeqAdvancesAcrossRestarts()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        using var dir = new TempFolder("spb");
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "spBv1.0/#", persistentSession: false);
        var options = Options(broker.Port, dir.File("outbox.db"));
        long firstBdSeq;
        await using (var pub = new MqttPublisher(options, "0.9.0"))
        await using (var spb = new SparkplugPublisher(options, pub))
        {
            spb.SetModel(Model());
            await pub.StartAsync(CancellationToken.None);
            await spb.StartAsync(CancellationToken.None);
            await sub.WaitUntilAsync(m => Count(m, "NBIRTH") == 1, Long, "first NBIRTH");
            firstBdSeq = BdSeq(Payload.Parser.ParseFrom(sub.On("/NBIRTH/" + Node).Single().Bytes));

            // Another client takes the node's client id: the broker ends the node's connection and sends its will.
            var intruder = new MqttClientFactory().CreateMqttClient();
            await intruder.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port)
                .WithClientId(options.EffectiveClientId + "-spb").WithProtocolVersion(MqttProtocolVersion.V500).Build());
            await sub.WaitUntilAsync(m => Count(m, "NDEATH") == 1, Long, "the will (NDEATH) on takeover");
            await intruder.DisconnectAsync();
            intruder.Dispose();
            var will = sub.On("/NDEATH/" + Node).Single();
            Assert.Equal(1, will.Qos);
            Assert.Equal(firstBdSeq, BdSeq(Payload.Parser.ParseFrom(will.Bytes)));
            await sub.WaitUntilAsync(m => Count(m, "NBIRTH") == 2, Long, "NBIRTH after the reconnect");
            await spb.StopAsync(CancellationToken.None);
            await sub.WaitUntilAsync(m => Count(m, "NDEATH") >= 2, Long, "NDEATH at stop");
        }

        var secondBdSeq = BdSeq(Payload.Parser.ParseFrom(sub.On("/NBIRTH/" + Node).Last().Bytes));
        Assert.NotEqual(firstBdSeq, secondBdSeq);

        // A new daemon process on the same state directory: bdSeq goes on from the file, it does not restart at 0.
        await using (var pub = new MqttPublisher(options, "0.9.0"))
        await using (var spb = new SparkplugPublisher(options, pub))
        {
            await pub.StartAsync(CancellationToken.None);
            await spb.StartAsync(CancellationToken.None);
            await sub.WaitUntilAsync(m => Count(m, "NBIRTH") == 3, Long, "NBIRTH after the restart");
        }

        var thirdBdSeq = BdSeq(Payload.Parser.ParseFrom(sub.On("/NBIRTH/" + Node).Last().Bytes));
        Assert.Equal((secondBdSeq + 1) % 256, thirdBdSeq);
    }

    private static MqttOptions Options(int port, string outbox, string? primaryHost = null)
    {
        var o = Samples.Options(port, outbox, Node);
        o.Sparkplug = new SparkplugOptions { Enabled = true, GroupId = Group, PrimaryHostId = primaryHost };
        return o;
    }

    private static ModelMessage Model() => new()
    {
        Id = Samples.Model.Id,
        Version = Samples.Model.Version,
        Sha256 = Samples.Model.Sha256,
        ExecutionProvider = "CPU",
        Levels = Samples.Tree.Levels.Select(l => l.Name).ToList(),
    };

    private static int Count(IReadOnlyList<Received> messages, string type) =>
        messages.Count(m => m.Topic.StartsWith($"spBv1.0/{Group}/{type}/", StringComparison.Ordinal));

    private static int Count(IEnumerable<Received> messages, string type) => Count(messages.ToList(), type);

    private static long BdSeq(Payload p) => (long)p.Metrics.Single(m => m.Name == SparkplugMetrics.BdSeq).LongValue;

    private static ulong AliasOf(Payload birth, string name) => birth.Metrics.Single(m => m.Name == name).Alias;

    private static ulong Now() => (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static byte[] State(bool online, long timestamp) =>
        Encoding.UTF8.GetBytes(new JsonObject { ["online"] = online, ["timestamp"] = timestamp }.ToJsonString());

    private static async Task PublishAsync(MosquittoBroker broker, string topic, byte[] payload, bool retain)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port)
            .WithProtocolVersion(MqttProtocolVersion.V500).WithTimeout(TimeSpan.FromSeconds(5)).Build());
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain).Build());
        await client.DisconnectAsync();
    }

    // protoc (Debian protobuf-compiler) with the schema from the Sparkplug specification, as a SCADA vendor would read it.
    private static async Task<string> ProtocDecodeAsync(byte[] payload)
    {
        using var dir = new TempFolder("protoc");
        var file = dir.File("payload.bin");
        await File.WriteAllBytesAsync(file, payload);
        var schemaDir = Path.Combine(TestPaths.RepoRoot, "src", "FmaEdge.Messaging", "Sparkplug");
        var r = await ExternalProcess.RunAsync("bash",
            ["-c", "command -v protoc >/dev/null || { echo 'protoc missing: apt-get install protobuf-compiler (build.sh does it)' >&2; exit 127; }; " +
                "exec protoc --decode=org.eclipse.tahu.protobuf.Payload --proto_path=\"$1\" sparkplug_b.proto < \"$2\"", "protoc", schemaDir, file],
            TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, $"protoc failed ({r.ExitCode}): {r.StdErr}");
        return r.StdOut;
    }
}
