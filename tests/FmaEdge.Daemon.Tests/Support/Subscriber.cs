using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using FmaEdge.TestSupport;
using MQTTnet;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A real MQTT subscriber on fma/test-node/#, collecting results and other messages.</summary>
public sealed class Subscriber : IAsyncDisposable
{
    private readonly IMqttClient _client;

    private Subscriber(IMqttClient client) => _client = client;

    public ConcurrentQueue<JsonElement> ResultQueue { get; } = new();
    public IReadOnlyCollection<JsonElement> Results => ResultQueue;
    public ConcurrentBag<(string Topic, string Payload)> Retained { get; } = [];

    public static async Task<Subscriber> ConnectAsync(MosquittoBroker broker)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var s = new Subscriber(client);
        client.ApplicationMessageReceivedAsync += e =>
        {
            var payload = Encoding.UTF8.GetString(e.ApplicationMessage.Payload);
            if (e.ApplicationMessage.Topic.EndsWith("/result", StringComparison.Ordinal))
            {
                s.ResultQueue.Enqueue(JsonDocument.Parse(payload).RootElement.Clone());
            }
            else
            {
                s.Retained.Add((e.ApplicationMessage.Topic, payload));
            }

            return Task.CompletedTask;
        };
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port).WithCleanSession().Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter("fma/test-node/#", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());
        return s;
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync();
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException)
            {
            }
        }

        _client.Dispose();
    }
}
