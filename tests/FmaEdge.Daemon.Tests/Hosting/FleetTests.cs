using System.Globalization;
using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Cli.Commands;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.Messaging;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Publishing;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>docs/fleet.md: three real fma-edge processes on one mosquitto, each with its own login and an ACL that keeps
/// it under its own prefix; two consumers sharing one subscription; <c>fma-edge fleet</c> watching them.</summary>
public sealed class FleetTests : IDisposable
{
    private const string Pw = "pw-";
    private readonly TempFolder _tmp = new("fleet");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Fleet_ThreeNodesOneBroker_SharedConsumersGetEachResultOnce_KilledNodeOffline_ForeignPrefixRefused()
    {
        var passwd = _tmp.File("passwd");
        foreach (var user in new[] { "node-a", "node-b", "node-c", "floor-1", "floor-2", "fleet" })
        {
            PasswordFile.SetUser(passwd, user, Pw + user, iterations: 1000);
        }

        var acl = _tmp.File("acl");
        File.WriteAllLines(acl,
        [
            "# every node reads and writes under its own prefix only",
            "pattern readwrite fma/%u/#",
            "user floor-1",
            "topic read fma/+/+/result",
            "user floor-2",
            "topic read fma/+/+/result",
            "user fleet",
            "topic read fma/+/status",
            "topic read fma/+/model",
            "topic read fma/+/stats",
        ]);
        await using var broker = await MosquittoBroker.StartNewAsync(new MosquittoSettings(PasswordFile: passwd, AclFile: acl));
        await using var floor1 = await Subscriber.ConnectAsync(broker.Host, broker.Port, "floor-1", Pw + "floor-1", "$share/floor/fma/+/+/result");
        await using var floor2 = await Subscriber.ConnectAsync(broker.Host, broker.Port, "floor-2", Pw + "floor-2", "$share/floor/fma/+/+/result");

        const int perNode = 6;
        var images = TestPaths.SampleImages("val").Take(perNode * 3).ToList();
        var nodes = new List<DaemonProcess>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var name = "node-" + (char)('a' + i);
                var root = Path.Combine(_tmp.Path, name);
                var (config, _) = await ProcessTests.PrepareAsync(root, DaemonHarness.Settings(root, Node(name, name, broker)), images.Skip(i * perNode).Take(perNode));
                nodes.Add(ProcessTests.Start(config));
            }

            // Each result once across the two consumers, and the broker spread them over both.
            await DaemonHarness.WaitUntilAsync(() => floor1.Results.Count + floor2.Results.Count >= images.Count, $"{images.Count} results across two consumers", 180_000);
            await Task.Delay(1000);
            var all = floor1.Results.Concat(floor2.Results).ToList();
            Assert.Equal(images.Count, all.Count);
            Assert.Equal(images.Count, all.Select(r => r.GetProperty("message_id").GetString()).Distinct().Count());
            Assert.Equal(perNode, all.Count(r => r.GetProperty("node").GetString() == "node-b"));
            Assert.NotEmpty(floor1.Results);
            Assert.NotEmpty(floor2.Results);

            // The fleet view: three nodes, all online and healthy.
            var fleet = await WaitForFleetAsync(broker, f => f.Nodes.Count == 3 && f.Nodes.All(n => n.Health == "healthy"), "three healthy nodes");
            Assert.Equal(FleetCommand.AllHealthy, fleet.Code);
            Assert.All(fleet.Nodes, n =>
            {
                Assert.Equal("online", n.State);
                Assert.Equal(64, n.Sha256?.Length);
                Assert.Equal("cpu", n.Provider);
                Assert.Equal(0, n.OutboxDepth);
            });
            var sessionA = fleet.Nodes.Single(n => n.Node == "node-a").Session;

            // kill -9 node-c: the broker publishes its will, and the fleet shows it offline.
            nodes[2].Kill();
            await nodes[2].WaitForExitAsync(TimeSpan.FromSeconds(10));
            fleet = await WaitForFleetAsync(broker, f => f.Nodes.Any(n => n.Node == "node-c" && n.State == "offline"), "node-c offline");
            Assert.Equal(FleetCommand.SomeNot, fleet.Code);
            Assert.Equal("connection_lost", fleet.Nodes.Single(n => n.Node == "node-c").Reason);
            Assert.Equal(2, fleet.Nodes.Count(n => n.State == "online"));

            // node-c comes back configured with node-a's prefix: the broker refuses everything it publishes there.
            await using var impostor = await DaemonHarness.StartAsync(Path.Combine(_tmp.Path, "impostor"), s =>
            {
                Node("node-c", "node-c", broker)(s);
                s["FmaEdge:Mqtt:TopicPrefix"] = "fma/node-a";
            });
            impostor.Drop(images.Take(2));
            var publisher = impostor.Services.GetRequiredService<MqttPublisher>();
            await DaemonHarness.WaitUntilAsync(() => publisher.Health.Rejected >= 2, "the broker refusing the impostor's results", 60_000);
            fleet = await WaitForFleetAsync(broker, f => f.Nodes.Count == 3, "the fleet");
            Assert.Equal(sessionA, fleet.Nodes.Single(n => n.Node == "node-a").Session); // node-a's retained status is still node-a's
            Assert.Equal(images.Count, floor1.Results.Count + floor2.Results.Count);
        }
        finally
        {
            foreach (var n in nodes)
            {
                n.Dispose();
            }
        }
    }

    [Fact]
    public async Task Fleet_BrokerUnreachable_Exit2()
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var options = new MqttOptions { Host = "127.0.0.1", Port = MosquittoBroker.FreeLoopbackPort(), ConnectTimeoutSeconds = 3 };
        var code = await FleetCommand.RunAsync(CliConsole.ToWriter(o, e), options, "fma/+", once: true, json: true, waitSeconds: 0, CancellationToken.None);
        Assert.Equal(FleetCommand.Unreachable, code);
        Assert.Contains("\"error\"", o.ToString(), StringComparison.Ordinal);
    }

    private static Action<Dictionary<string, string?>> Node(string name, string user, MosquittoBroker broker) => s =>
    {
        s["FmaEdge:NodeName"] = name;
        s["FmaEdge:Output:Type"] = "mqtt";
        s.Remove("FmaEdge:Output:Path");
        s["FmaEdge:Mqtt:Host"] = broker.Host;
        s["FmaEdge:Mqtt:Port"] = broker.Port.ToString(CultureInfo.InvariantCulture);
        s["FmaEdge:Mqtt:Embedded:Enabled"] = "false";
        s["FmaEdge:Mqtt:Username"] = user;
        s["FmaEdge:Mqtt:Password"] = Pw + user;
        s["FmaEdge:Mqtt:KeepAliveSeconds"] = "2"; // the will follows a kill within ~3 s
    };

    private sealed record FleetRow(string? Node, string? State, string? Reason, string? Health, string? Session, string? Sha256, string? Provider, long? OutboxDepth);

    private sealed record FleetView(int Code, IReadOnlyList<FleetRow> Nodes);

    // Runs `fma-edge fleet --once --json` as the "fleet" user until the view satisfies the condition.
    private static async Task<FleetView> WaitForFleetAsync(MosquittoBroker broker, Func<FleetView, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        FleetView? last = null;
        while (DateTime.UtcNow < deadline)
        {
            using var o = new StringWriter();
            using var e = new StringWriter();
            var options = new MqttOptions { Host = broker.Host, Port = broker.Port, Username = "fleet", Password = Pw + "fleet", ConnectTimeoutSeconds = 5 };
            var code = await FleetCommand.RunAsync(CliConsole.ToWriter(o, e), options, "fma/+", once: true, json: true, waitSeconds: 0.5, CancellationToken.None);
            using var doc = JsonDocument.Parse(o.ToString());
            var rows = doc.RootElement.GetProperty("nodes").EnumerateArray().Select(n => new FleetRow(
                Str(n, "node"), Str(n, "state"), Str(n, "reason"), Str(n, "health"), Str(n, "session"),
                n.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.Object ? Str(m, "sha256") : null,
                n.TryGetProperty("model", out var m2) && m2.ValueKind == JsonValueKind.Object ? Str(m2, "provider") : null,
                n.GetProperty("outbox_depth") is { ValueKind: JsonValueKind.Number } d ? d.GetInt64() : null)).ToList();
            last = new FleetView(code, rows);
            if (condition(last))
            {
                return last;
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"fleet view never showed {what}; last: exit {last?.Code}, " +
            string.Join("; ", last?.Nodes.Select(n => $"{n.Node} {n.State} {n.Health}") ?? []));
    }

    private static string? Str(JsonElement j, string name) => j.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
