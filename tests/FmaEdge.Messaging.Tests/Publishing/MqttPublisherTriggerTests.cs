using System.Collections.Concurrent;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Tests.Publishing;

/// <summary>Software trigger commands on <c>&lt;prefix&gt;/&lt;source&gt;/trigger</c> (docs/mqtt.md) through a real mosquitto.</summary>
public sealed class MqttPublisherTriggerTests
{
    [Fact]
    public async Task Trigger_LiveMessagesOnTheNodesTopicsReachTheHandlerOnce_RetainedOnesNeverEvenAfterAReconnect()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        using var dir = new TempFolder("trigger");
        var plc = new MqttClientFactory().CreateMqttClient();
        var plcOptions = new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port).WithClientId("plc")
            .WithProtocolVersion(MqttProtocolVersion.V500).WithTimeout(TimeSpan.FromSeconds(5)).Build();
        await plc.ConnectAsync(plcOptions);

        async Task Send(string topic, bool retain = false)
        {
            var result = await plc.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain).Build());
            Assert.True(result.IsSuccess || result.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers, result.ReasonCode.ToString());
        }

        // Left on the broker before the node connects: a trigger is for its moment, so this one must never fire.
        await Send("fma/orin-01/cam1/trigger", retain: true);

        var got = new ConcurrentQueue<string>();
        await using var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox.db"), "orin-01"), "0.1.0")
        {
            TriggerHandler = source =>
            {
                got.Enqueue(source);
                return source == "cam1";
            },
        };
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);
        await Task.Delay(1000);
        Assert.Empty(got);

        await Send("fma/orin-01/cam1/trigger");
        await Send("fma/orin-01/cam1/trigger");
        await Send("fma/orin-01/cam2/trigger"); // the handler refuses it (not a triggered source)
        await Send("fma/other-node/cam1/trigger"); // another node's
        await Send("fma/orin-01/cam1/result"); // not a command
        await Wait.UntilAsync(() => got.Count >= 3, TimeSpan.FromSeconds(10), "three triggers");
        await Task.Delay(500);
        Assert.Equal(["cam1", "cam1", "cam2"], got.ToArray());
        Assert.Equal((2L, 1L), pub.Triggers);

        // A reconnect (the broker restarts; it keeps retained messages) replays nothing.
        await broker.StopAsync();
        await broker.StartAsync();
        await Wait.UntilAsync(() => pub.Health.Connects >= 2 && pub.State == ConnectionState.Connected, TimeSpan.FromSeconds(30), "the reconnect");
        await Task.Delay(1500);
        Assert.Equal(3, got.Count);

        // ... and triggers work again on the new connection.
        plc.Dispose();
        plc = new MqttClientFactory().CreateMqttClient();
        await plc.ConnectAsync(plcOptions);
        await Send("fma/orin-01/cam1/trigger");
        await Wait.UntilAsync(() => got.Count >= 4, TimeSpan.FromSeconds(10), "a trigger after the reconnect");
        Assert.Equal((3L, 1L), pub.Triggers);

        // A trigger sent while the node is away is not kept for it: the node's next session starts clean.
        await pub.StopAsync(CancellationToken.None);
        await Send("fma/orin-01/cam1/trigger");
        var later = new ConcurrentQueue<string>();
        await using var again = new MqttPublisher(Samples.Options(broker.Port, dir.File("outbox2.db"), "orin-01"), "0.1.0")
        {
            TriggerHandler = source =>
            {
                later.Enqueue(source);
                return true;
            },
        };
        await again.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(again);
        await Task.Delay(1000);
        Assert.Empty(later);
        plc.Dispose();
    }
}
