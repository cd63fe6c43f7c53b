using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace FmaEdge.Messaging.Tests.Broker;

public sealed class EmbeddedBrokerTests
{
    [Fact]
    public async Task Publish_ThroughEmbeddedBroker_SubscriberGetsResultAndRetainedStatus()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var broker = new EmbeddedBroker(new EmbeddedBrokerOptions { Port = port });
        await broker.StartAsync(CancellationToken.None);
        Assert.True(broker.IsRunning);
        Assert.True(IPAddress.IsLoopback(broker.EndPoint.Address));

        using var dir = new TempFolder("embedded");
        var options = Samples.Options(port, dir.File("outbox.db"), "box");
        options.Embedded = new EmbeddedBrokerOptions { Enabled = true, Port = port };
        await using var pub = new MqttPublisher(options, "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);
        await using var sub = await TestSubscriber.ConnectAsync("127.0.0.1", port, "fma/#", persistentSession: false);
        await sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/box/status" && x.Retain), TimeSpan.FromSeconds(10), "retained status");

        var id = pub.CommitResult(Samples.Result("folder", 0)).MessageId;
        await sub.WaitUntilAsync(m => m.Any(x => x.MessageId == id), TimeSpan.FromSeconds(10), "result");
        Assert.True(broker.ConnectedClients >= 2);

        // Loopback only: the machine's other addresses do not answer.
        var external = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        if (external is not null)
        {
            using var probe = new TcpClient();
            await Assert.ThrowsAnyAsync<SocketException>(() => probe.ConnectAsync(external, port));
        }

        // Stopping the broker is an outage like any other: the publisher notices and queues.
        await broker.StopAsync(CancellationToken.None);
        await Wait.UntilAsync(() => pub.State != ConnectionState.Connected, TimeSpan.FromSeconds(10), "publisher notices");
        pub.CommitResult(Samples.Result("folder", 1));
        Assert.True(pub.Health.Outbox.Depth >= 1);
    }

    [Fact]
    public async Task Start_PortAlreadyTaken_Throws()
    {
        await using var mosquitto = await MosquittoBroker.StartNewAsync();
        await using var broker = new EmbeddedBroker(new EmbeddedBrokerOptions { Port = mosquitto.Port });
        await Assert.ThrowsAnyAsync<Exception>(() => broker.StartAsync(CancellationToken.None));
        Assert.False(broker.IsRunning);
    }

    [Fact]
    public async Task Start_Disabled_DoesNothing()
    {
        await using var broker = new EmbeddedBroker(new EmbeddedBrokerOptions { Enabled = false, Port = MosquittoBroker.FreeLoopbackPort() });
        await broker.StartAsync(CancellationToken.None);
        Assert.False(broker.IsRunning);
    }
}

public sealed class HostingTests
{
    [Fact]
    public async Task AddFmaEdgeMessaging_GenericHost_StartsBrokerThenPublisherAndStopsCleanly()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        using var dir = new TempFolder("host");
        var options = Samples.Options(port, dir.File("outbox.db"), "hosted");
        options.Embedded = new EmbeddedBrokerOptions { Enabled = true, Port = port };
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddFmaEdgeMessaging(options, "9.9.9");
        using var host = builder.Build();
        await host.StartAsync();
        var pub = host.Services.GetRequiredService<MqttPublisher>();
        var broker = host.Services.GetRequiredService<EmbeddedBroker>();
        Assert.True(broker.IsRunning);
        await Wait.ConnectedAsync(pub);
        await using var sub = await TestSubscriber.ConnectAsync("127.0.0.1", port, "fma/hosted/status", persistentSession: false);
        await sub.WaitUntilAsync(m => m.Any(x => x.Payload.Contains("\"online\"") && x.Payload.Contains("9.9.9")), TimeSpan.FromSeconds(10), "online");

        bool? brokerUpWhenPublisherStopped = null;
        pub.StateChanged += (_, c) =>
        {
            if (c.State == ConnectionState.Stopped)
            {
                brokerUpWhenPublisherStopped = broker.IsRunning;
            }
        };
        await host.StopAsync();
        Assert.Equal(ConnectionState.Stopped, pub.State);
        Assert.False(broker.IsRunning);
        Assert.True(brokerUpWhenPublisherStopped); // reverse order: "offline" went out while the broker was still there
    }
}
