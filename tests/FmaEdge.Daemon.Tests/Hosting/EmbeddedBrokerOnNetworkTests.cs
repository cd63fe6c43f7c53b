using System.Globalization;
using FmaEdge.Cli;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>The daemon's embedded broker listening beyond loopback (docs/mqtt.md, "Embedded broker on a network"): users
/// written with <c>fma-edge broker passwd</c>, an ACL file, the daemon's own publisher logging in, anonymous clients
/// refused; and anonymous access on the network allowed only explicitly, and then reported by status.</summary>
public sealed class EmbeddedBrokerOnNetworkTests : IDisposable
{
    private readonly TempFolder _tmp = new("netbroker");

    public void Dispose() => _tmp.Dispose();

    private static (int Code, string Out, string Err) Passwd(string file, string user, string stdin)
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var console = CliConsole.ToWriter(o, e) with { In = new StringReader(stdin) };
        var code = FmaEdgeCli.Run(["broker", "passwd", file, user], console);
        return (code, o.ToString(), e.ToString());
    }

    private static Action<Dictionary<string, string?>> EmbeddedOnAllInterfaces(int port, Action<Dictionary<string, string?>> more) => s =>
    {
        s["FmaEdge:Output:Type"] = "mqtt";
        s.Remove("FmaEdge:Output:Path");
        s["FmaEdge:Mqtt:Host"] = "127.0.0.1";
        s["FmaEdge:Mqtt:Port"] = port.ToString(CultureInfo.InvariantCulture);
        s["FmaEdge:Mqtt:Embedded:Enabled"] = "true";
        s["FmaEdge:Mqtt:Embedded:BindAddress"] = "0.0.0.0";
        s["FmaEdge:Mqtt:Embedded:Port"] = port.ToString(CultureInfo.InvariantCulture);
        more(s);
    };

    [Fact]
    public async Task Run_UsersAndAcl_TheDaemonPublishesAndOnlyTheFloorUserReadsIt()
    {
        var passwd = _tmp.File("passwd");
        Assert.Equal(0, Passwd(passwd, "edge", "edge-secret\n").Code);
        Assert.Equal(0, Passwd(passwd, "floor", "floor-secret\n").Code);
        Assert.Equal(0, Passwd(passwd, "visitor", "visitor-secret\n").Code);
        Assert.Equal(2, Passwd(passwd, "nobody", "").Code); // no password: nothing written
        Assert.Equal(2, Passwd(passwd, "bad:name", "x\n").Code);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(passwd));
        var acl = _tmp.File("acl");
        File.WriteAllLines(acl, ["user edge", "topic readwrite fma/test-node/#", "user floor", "topic read fma/+/+/result", "user visitor", "topic read public/#"]);

        var port = MosquittoBroker.FreeLoopbackPort();
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, EmbeddedOnAllInterfaces(port, s =>
        {
            s["FmaEdge:Mqtt:Embedded:PasswordFile"] = passwd;
            s["FmaEdge:Mqtt:Embedded:AclFile"] = acl;
            s["FmaEdge:Mqtt:Username"] = "edge";
            s["FmaEdge:Mqtt:Password"] = "edge-secret";
        }));
        await using var floor = await Subscriber.ConnectAsync("127.0.0.1", port, "floor", "floor-secret", "#");
        await using var visitor = await Subscriber.ConnectAsync("127.0.0.1", port, "visitor", "visitor-secret", "#");
        await Assert.ThrowsAnyAsync<Exception>(() => Subscriber.ConnectAsync("127.0.0.1", port));
        await Assert.ThrowsAnyAsync<Exception>(() => Subscriber.ConnectAsync("127.0.0.1", port, "floor", "edge-secret"));

        var images = TestPaths.SampleImages("val").Take(3).ToList();
        daemon.Drop(images);
        await DaemonHarness.WaitUntilAsync(() => floor.Results.Count >= images.Count, $"{images.Count} results for the floor user");
        await Task.Delay(500);
        Assert.Empty(floor.Retained); // status and model are not the floor's to read
        Assert.Empty(visitor.Results);
        Assert.Empty(visitor.Retained);
        var status = daemon.Status.Snapshot();
        Assert.Equal("healthy", status.Health);
        Assert.True(status.Output.Connected);

        // The same file serves a real mosquitto.
        await using var mosquitto = await MosquittoBroker.StartNewAsync(new MosquittoSettings(PasswordFile: passwd));
        await using var onMosquitto = await Subscriber.ConnectAsync(mosquitto.Host, mosquitto.Port, "floor", "floor-secret");
        await Assert.ThrowsAnyAsync<Exception>(() => Subscriber.ConnectAsync(mosquitto.Host, mosquitto.Port, "floor", "wrong"));
    }

    [Fact]
    public async Task Status_AnonymousAllowedOnTheNetwork_ReportedAsAProblem()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var daemon = await DaemonHarness.StartAsync(_tmp.Path, EmbeddedOnAllInterfaces(port, s => s["FmaEdge:Mqtt:Embedded:AllowAnonymous"] = "true"));
        await using var anyone = await Subscriber.ConnectAsync("127.0.0.1", port);
        daemon.Drop(TestPaths.SampleImages("val").Take(1));
        await DaemonHarness.WaitUntilAsync(() => anyone.Results.Count == 1, "the result, to an anonymous client");

        var status = daemon.Status.Snapshot();
        Assert.Equal("degraded", status.Health);
        Assert.Contains(status.Problems, p => p.Contains("accepts anonymous clients from the network", StringComparison.Ordinal));
    }

    [Fact]
    public void Configure_OnTheNetworkWithoutUsers_RefusedNamingTheFix()
    {
        var settings = DaemonHarness.Settings(_tmp.Path, EmbeddedOnAllInterfaces(MosquittoBroker.FreeLoopbackPort(), _ => { }));
        var config = FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(_tmp.Path, "none"), overrides: settings);
        var ex = Assert.Throws<ConfigurationErrorsException>(() => { FmaEdgeConfiguration.Bind(config); });
        Assert.Contains("Mqtt.Embedded.PasswordFile", ex.Message, StringComparison.Ordinal);
    }
    [Fact]
    public async Task BrokerServe_UsersOnLoopback_ServesThemUntilCancelled_AndRefusesTheNetworkWithoutUsers()
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var console = CliConsole.ToWriter(o, e);
        var port = MosquittoBroker.FreeLoopbackPort().ToString(CultureInfo.InvariantCulture);
        using (var quick = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            var refused = await FmaEdgeCli.Build(console).Parse(["broker", "serve", "--bind", "0.0.0.0", "--port", port]).InvokeAsync(cancellationToken: quick.Token);
            Assert.Equal(2, refused);
            Assert.Contains("PasswordFile", e.ToString(), StringComparison.Ordinal);
        }

        var passwd = _tmp.File("serve.passwd");
        Assert.Equal(0, Passwd(passwd, "floor", "floor-secret\n").Code);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var serving = FmaEdgeCli.Build(console).Parse(["broker", "serve", "--port", port, "--password-file", passwd]).InvokeAsync(cancellationToken: stop.Token);
        await DaemonHarness.WaitUntilAsync(() => o.ToString().Contains("listening on", StringComparison.Ordinal) || serving.IsCompleted, "broker serve to listen");
        Assert.False(serving.IsCompleted, e.ToString());
        await using (var floor = await Subscriber.ConnectAsync("127.0.0.1", int.Parse(port, CultureInfo.InvariantCulture), "floor", "floor-secret", "#"))
        {
            await Assert.ThrowsAnyAsync<Exception>(() => Subscriber.ConnectAsync("127.0.0.1", int.Parse(port, CultureInfo.InvariantCulture)));
        }

        await stop.CancelAsync();
        Assert.Equal(0, await serving.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
