using System.Text;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Tests.Broker;

/// <summary>The embedded broker on a network: users from a password file, topic rules from an ACL file (mosquitto's
/// formats, so each scenario runs against the embedded broker and a real mosquitto with the same files and must end the
/// same), the daemon's own topics kept its own, and empty client ids assigned.</summary>
public sealed class EmbeddedBrokerSecurityTests
{
    private const string FloorPassword = "floor-pw 1!";
    private const string EdgePassword = "edge-pw 2?";
    private const string IntruderPassword = "intruder-pw";

    public static TheoryData<string> Brokers => new() { "embedded", "mosquitto" };

    [Theory]
    [MemberData(nameof(Brokers))]
    public async Task Connect_PasswordFileFromBothTools_RightPasswordsInAnonymousAndWrongOnesOut(string kind)
    {
        using var dir = new TempFolder("auth");
        var passwd = await PasswordsAsync(dir);
        await using var broker = await StartAsync(kind, passwd, acl: null);

        // "floor" was written by mosquitto_passwd, "edge" by fma-edge: each broker takes both.
        Assert.Null(await ConnectAsync(broker.Port, "floor", FloorPassword));
        Assert.Null(await ConnectAsync(broker.Port, "edge", EdgePassword));
        Assert.Null(await ConnectAsync(broker.Port, "edge", EdgePassword, MqttProtocolVersion.V311));
        Assert.NotNull(await ConnectAsync(broker.Port, "edge", FloorPassword));
        Assert.NotNull(await ConnectAsync(broker.Port, "nobody", FloorPassword));
        Assert.NotNull(await ConnectAsync(broker.Port, null, null));
        Assert.NotNull(await ConnectAsync(broker.Port, null, null, MqttProtocolVersion.V311));
        if (broker.Embedded is { } e)
        {
            Assert.Equal(4, e.RefusedConnections);
        }
    }

    [Theory]
    [MemberData(nameof(Brokers))]
    public async Task Subscribe_Everything_EachUserGetsOnlyWhatItsAclLetsItRead(string kind)
    {
        using var dir = new TempFolder("acl");
        var passwd = await PasswordsAsync(dir);
        var acl = dir.File("acl");
        File.WriteAllLines(acl,
        [
            "# the node publishes under its prefix; the floor reads results and status; the intruder nothing of it",
            "user edge",
            "topic readwrite fma/box/#",
            "user floor",
            "topic read fma/box/+/result",
            "topic read fma/box/status",
            "user intruder",
            "topic readwrite other/#",
        ]);
        await using var broker = await StartAsync(kind, passwd, acl);

        using var edge = await ClientAsync(broker.Port, "edge", EdgePassword);
        await PublishAsync(edge, "fma/box/status", "{\"state\":\"online\"}", retain: true);
        await PublishAsync(edge, "fma/box/model", "{\"id\":\"m\"}", retain: true);

        await using var floor = await TestSubscriber.ConnectAsync("127.0.0.1", broker.Port, "#", persistentSession: false,
            b => b.WithCredentials("floor", FloorPassword));
        await using var intruder = await TestSubscriber.ConnectAsync("127.0.0.1", broker.Port, "#", persistentSession: false,
            b => b.WithCredentials("intruder", IntruderPassword));
        await PublishAsync(edge, "fma/box/line1/result", "{\"seq\":1}", retain: false);
        await PublishAsync(edge, "fma/box/events", "{\"kind\":\"bad_image\"}", retain: false);
        await floor.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/box/line1/result"), TimeSpan.FromSeconds(10), "the result");
        await Task.Delay(500); // anything else would have arrived by now, in order, on the same connection

        Assert.Equal(["fma/box/line1/result", "fma/box/status"], floor.Messages.Select(m => m.Topic).Distinct().Order());
        Assert.Empty(intruder.Messages);

        // Nobody else may clear or fake the node's retained status.
        using var thief = await ClientAsync(broker.Port, "intruder", IntruderPassword);
        await PublishAsync(thief, "fma/box/status", "", retain: true, expectAccepted: kind == "mosquitto" ? null : false);
        await using var late = await TestSubscriber.ConnectAsync("127.0.0.1", broker.Port, "fma/box/status", persistentSession: false,
            b => b.WithCredentials("floor", FloorPassword));
        await late.WaitUntilAsync(m => m.Any(x => x.Retain && x.Payload.Contains("online", StringComparison.Ordinal)), TimeSpan.FromSeconds(10),
            "the retained status, untouched");
        if (broker.Embedded is { } e)
        {
            Assert.Equal(1, e.RefusedPublishes);
        }
    }

    [Fact]
    public async Task Publish_OnTheDaemonsTopicsByAnotherClient_RefusedWhileItsOtherTopicsStayOpen()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        var reserved = ReservedTopics.Of(new Topics(null, "box"), "fma-edge-box", null);
        await using var broker = new EmbeddedBroker(new EmbeddedBrokerOptions { Port = port }, reserved: reserved);
        await broker.StartAsync(CancellationToken.None);

        using var daemon = await ClientAsync(port, null, null, "fma-edge-box");
        await PublishAsync(daemon, "fma/box/status", "{\"state\":\"online\"}", retain: true);
        await using var sub = await TestSubscriber.ConnectAsync("127.0.0.1", port, "fma/#", persistentSession: false);
        await sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/box/status"), TimeSpan.FromSeconds(10), "retained status");

        using var other = await ClientAsync(port, null, null, "someone-else");
        await PublishAsync(other, "fma/box/status", "", retain: true, expectAccepted: false);
        await PublishAsync(other, "fma/box/line1/result", "{\"fake\":true}", retain: false, expectAccepted: false);
        await PublishAsync(other, "fma/box/stats", "{}", retain: false, expectAccepted: false);
        await PublishAsync(other, "fma/box/cmd/trigger", "{}", retain: false, expectAccepted: true); // commands are not the daemon's to publish
        await PublishAsync(daemon, "fma/box/line1/result", "{\"seq\":1}", retain: false, expectAccepted: true);
        await sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/box/line1/result"), TimeSpan.FromSeconds(10), "the daemon's result");

        Assert.DoesNotContain(sub.Messages, m => m.Payload.Contains("fake", StringComparison.Ordinal) || m.Topic.EndsWith("/stats", StringComparison.Ordinal));
        Assert.Contains(sub.Messages, m => m.Topic == "fma/box/cmd/trigger");
        Assert.Equal(3, broker.RefusedPublishes);
        await using var late = await TestSubscriber.ConnectAsync("127.0.0.1", port, "fma/box/status", persistentSession: false);
        await late.WaitUntilAsync(m => m.Any(x => x.Retain && x.Payload.Contains("online", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "status kept");
    }

    [Fact]
    public async Task Connect_EmptyClientId_BrokerAssignsOne()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var broker = new EmbeddedBroker(new EmbeddedBrokerOptions { Port = port });
        await broker.StartAsync(CancellationToken.None);
        using var edge = await ClientAsync(port, null, null, "edge");
        await PublishAsync(edge, "fma/box/status", "{\"state\":\"online\"}", retain: true);

        // MQTT 5 (mosquitto_sub without -i sends an empty id only with -V mqttv5); MQTT 3.1.1 clients must send one
        // (MQTTnet's server assigns ids for MQTT 5 only; docs/mqtt.md says so).
        Assert.Null(await ConnectAsync(port, null, null, MqttProtocolVersion.V500, clientId: ""));
        Assert.NotNull(await ConnectAsync(port, null, null, MqttProtocolVersion.V311, clientId: ""));
        var sub = await ExternalProcess.RunAsync("/usr/bin/mosquitto_sub",
            ["-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-V", "mqttv5", "-t", "fma/box/status", "-C", "1", "-W", "10"],
            TimeSpan.FromSeconds(20));
        Assert.True(sub.ExitCode == 0, $"mosquitto_sub exit {sub.ExitCode}: {sub.StdErr}");
        Assert.Contains("online", sub.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NetworkExposureAndFiles_EveryProblemNamed()
    {
        using var dir = new TempFolder("cfg");
        IReadOnlyList<string> Errors(EmbeddedBrokerOptions o)
        {
            var options = Samples.Options(1883, dir.File("outbox.db"), "box");
            options.Embedded = o;
            return options.Validate();
        }


        Assert.Contains(Errors(new EmbeddedBrokerOptions { BindAddress = "0.0.0.0" }), x => x.Contains("reachable from the network", StringComparison.Ordinal));
        Assert.Empty(Errors(new EmbeddedBrokerOptions { BindAddress = "0.0.0.0", AllowAnonymous = true }));
        Assert.True(new EmbeddedBrokerOptions { BindAddress = "0.0.0.0", AllowAnonymous = true }.AnonymousAllowed);
        Assert.True(new EmbeddedBrokerOptions().AnonymousAllowed);
        Assert.Contains(Errors(new EmbeddedBrokerOptions { AllowAnonymous = false }), x => x.Contains("no client could connect", StringComparison.Ordinal));
        Assert.Contains(Errors(new EmbeddedBrokerOptions { PasswordFile = dir.File("missing") }), x => x.StartsWith("Mqtt.Embedded.PasswordFile:", StringComparison.Ordinal));

        File.WriteAllLines(dir.File("bad-passwd"), ["edge:$7$101$c2FsdA==$aGFzaA==", "floor:plain-text"]);
        Assert.Contains(Errors(new EmbeddedBrokerOptions { PasswordFile = dir.File("bad-passwd") }), x => x.Contains("bad-passwd:2:", StringComparison.Ordinal));
        File.WriteAllLines(dir.File("bad-acl"), ["user floor", "topic sometimes fma/#"]);
        Assert.Contains(Errors(new EmbeddedBrokerOptions { AclFile = dir.File("bad-acl") }), x => x.Contains("bad-acl:2:", StringComparison.Ordinal));

        // The daemon's own publisher must be able to log in to a broker that refuses anonymous clients.
        PasswordFile.SetUser(dir.File("passwd"), "edge", EdgePassword, iterations: 1000);
        var options = Samples.Options(1883, dir.File("outbox.db"), "box");
        options.Embedded = new EmbeddedBrokerOptions { Port = 1883, BindAddress = "0.0.0.0", PasswordFile = dir.File("passwd") };
        Assert.Contains(options.Validate(), x => x.Contains("needs Mqtt.Username", StringComparison.Ordinal));
        options.Username = "someone";
        Assert.Contains(options.Validate(), x => x.Contains("'someone' is not a user", StringComparison.Ordinal));
        options.Username = "edge";
        options.Password = EdgePassword;
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void AclFile_Rules_MatchMosquittoSemantics()
    {
        var acl = AclFile.Parse(
        [
            "topic read public/#",
            "user floor",
            "topic fma/+/result",
            "topic deny fma/secret/result",
            "pattern write fma/%u/#",
            "pattern read clients/%c",
        ]);
        Assert.True(acl.CanRead(null, "c", "public/x"));
        Assert.False(acl.CanWrite(null, "c", "public/x"));
        Assert.False(acl.CanRead("floor", "c", "public/x")); // anonymous rules are the anonymous client's only
        Assert.True(acl.CanWrite("floor", "c", "fma/a/result"));
        Assert.False(acl.CanRead("floor", "c", "fma/secret/result")); // deny wins
        Assert.True(acl.CanWrite("floor", "c", "fma/floor/anything"));
        Assert.False(acl.CanWrite("other", "c", "fma/floor/anything"));
        Assert.False(acl.CanWrite(null, "c", "fma/floor/anything")); // %u never matches an anonymous client
        Assert.True(acl.CanRead("other", "c1", "clients/c1"));
        Assert.False(acl.CanRead("other", "c1", "clients/c2"));

        Assert.True(AclFile.Matches("fma/#", "fma"));
        Assert.True(AclFile.Matches("+/+", "a/b"));
        Assert.False(AclFile.Matches("+/+", "a/b/c"));
        Assert.False(AclFile.Matches("#", "$SYS/broker/uptime"));
        Assert.True(AclFile.Matches("$SYS/#", "$SYS/broker/uptime"));
    }

    // floor: written by mosquitto_passwd (its own format and iteration count); edge and intruder: by fma-edge's helper.
    private static async Task<string> PasswordsAsync(TempFolder dir)
    {
        var path = dir.File("passwd");
        var made = await ExternalProcess.RunAsync("/usr/bin/mosquitto_passwd", ["-c", "-b", path, "floor", FloorPassword], TimeSpan.FromSeconds(20));
        Assert.True(made.ExitCode == 0, made.StdErr);
        PasswordFile.SetUser(path, "edge", EdgePassword);
        PasswordFile.SetUser(path, "intruder", IntruderPassword, iterations: 1000);
        return path;
    }

    private static async Task<TestBroker> StartAsync(string kind, string passwordFile, string? acl)
    {
        if (kind == "mosquitto")
        {
            var m = await MosquittoBroker.StartNewAsync(new MosquittoSettings(PasswordFile: passwordFile, AclFile: acl));
            return new TestBroker(m.Port, null, m);
        }

        var port = MosquittoBroker.FreeLoopbackPort();
        var e = new EmbeddedBroker(new EmbeddedBrokerOptions { Port = port, PasswordFile = passwordFile, AclFile = acl });
        await e.StartAsync(CancellationToken.None);
        return new TestBroker(port, e, null);
    }

    private static MqttClientOptions ClientOptions(int port, string? user, string? password, MqttProtocolVersion version, string clientId)
    {
        var b = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithProtocolVersion(version).WithClientId(clientId)
            .WithCleanSession().WithTimeout(TimeSpan.FromSeconds(5));
        return (user is null ? b : b.WithCredentials(user, password)).Build();
    }

    // Null when the broker accepted the connection, else why it did not (MQTTnet throws on a refusal).
    private static async Task<string?> ConnectAsync(int port, string? user, string? password,
        MqttProtocolVersion version = MqttProtocolVersion.V500, string? clientId = null)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            var r = await client.ConnectAsync(ClientOptions(port, user, password, version, clientId ?? "probe-" + Guid.NewGuid().ToString("N")[..8]));
            await client.DisconnectAsync();
            return r.ResultCode == MqttClientConnectResultCode.Success ? null : r.ResultCode.ToString();
        }
        catch (MQTTnet.Adapter.MqttConnectingFailedException x)
        {
            return x.Message;
        }
    }

    private static async Task<IMqttClient> ClientAsync(int port, string? user, string? password, string? clientId = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(ClientOptions(port, user, password, MqttProtocolVersion.V500, clientId ?? "c-" + Guid.NewGuid().ToString("N")[..8]));
        return client;
    }

    // QoS 1; expectAccepted checks the PUBACK's reason code (null: not checked, mosquitto may not say).
    private static async Task PublishAsync(IMqttClient client, string topic, string payload, bool retain, bool? expectAccepted = true)
    {
        var r = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload))
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain).Build());
        if (expectAccepted is { } accepted)
        {
            Assert.True(accepted == r.IsSuccess, $"publish on {topic}: {r.ReasonCode}");
        }
    }

    private sealed record TestBroker(int Port, EmbeddedBroker? Embedded, MosquittoBroker? Mosquitto) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (Embedded is not null)
            {
                await Embedded.DisposeAsync();
            }

            if (Mosquitto is not null)
            {
                await Mosquitto.DisposeAsync();
            }
        }
    }
}
