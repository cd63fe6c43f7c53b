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

    public static Task<Subscriber> ConnectAsync(MosquittoBroker broker) => ConnectAsync(broker.Host, broker.Port);

    /// <summary>Subscribes to <paramref name="filter"/> on any broker, with credentials when given.</summary>
    public static async Task<Subscriber> ConnectAsync(string host, int port, string? user = null, string? password = null,
        string filter = "fma/test-node/#")
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
        var options = new MqttClientOptionsBuilder().WithTcpServer(host, port).WithCleanSession().WithTimeout(TimeSpan.FromSeconds(10));
        await client.ConnectAsync((user is null ? options : options.WithCredentials(user, password)).Build());
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(filter, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());
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
