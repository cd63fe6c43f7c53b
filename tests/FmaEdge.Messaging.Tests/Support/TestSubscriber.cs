using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Tests.Support;

/// <summary>One message as a subscriber saw it.</summary>
public sealed record Received(string Topic, string Payload, bool Retain, bool Dup, DateTimeOffset At, byte[]? Bytes = null, int Qos = 0)
{
    public JsonObject Json => JsonNode.Parse(Payload)!.AsObject();

    public string? MessageId => Json["message_id"]?.GetValue<string>();
}

/// <summary>A real MQTTnet subscriber with a persistent session (QoS 1), so a broker outage costs it nothing:
/// it reconnects by itself and the broker delivers what it queued. Thread-safe reads.</summary>
public sealed class TestSubscriber : IAsyncDisposable
{
    private readonly IMqttClient _client;
    private readonly MqttClientOptions _options;
    private readonly string _filter;
    private readonly ConcurrentQueue<Received> _messages = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _reconnect;

    private TestSubscriber(IMqttClient client, MqttClientOptions options, string filter)
    {
        _client = client;
        _options = options;
        _filter = filter;
    }

    public IReadOnlyList<Received> Messages => _messages.ToArray();

    public IEnumerable<Received> On(string topicSuffix) => Messages.Where(m => m.Topic.EndsWith(topicSuffix, StringComparison.Ordinal));

    public static async Task<TestSubscriber> ConnectAsync(string host, int port, string filter, bool persistentSession = true,
        Action<MqttClientOptionsBuilder>? configure = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer(host, port)
            .WithClientId("test-sub-" + Guid.NewGuid().ToString("N")[..12])
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(!persistentSession)
            .WithSessionExpiryInterval(persistentSession ? 3600u : 0u)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(5))
            .WithTimeout(TimeSpan.FromSeconds(5));
        configure?.Invoke(b);
        var s = new TestSubscriber(client, b.Build(), filter);
        client.ApplicationMessageReceivedAsync += e =>
        {
            s._messages.Enqueue(new Received(e.ApplicationMessage.Topic, e.ApplicationMessage.ConvertPayloadToString(),
                e.ApplicationMessage.Retain, e.ApplicationMessage.Dup, DateTimeOffset.UtcNow, e.ApplicationMessage.Payload.ToArray(),
                (int)e.ApplicationMessage.QualityOfServiceLevel));
            return Task.CompletedTask;
        };
        await s.ConnectAndSubscribeAsync(CancellationToken.None);
        s._reconnect = Task.Run(() => s.KeepConnectedAsync(s._stop.Token));
        return s;
    }

    /// <summary>Waits until the condition over all messages holds; throws with what arrived when it does not.</summary>
    public async Task WaitUntilAsync(Func<IReadOnlyList<Received>, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (condition(Messages))
            {
                return;
            }

            await Task.Delay(25);
        }

        var got = Messages;
        throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}; got {got.Count} message(s): " +
            string.Join(", ", got.GroupBy(m => m.Topic).Select(g => $"{g.Key} x{g.Count()}")));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_reconnect is not null)
        {
            await _reconnect;
        }

        try
        {
            if (_client.IsConnected)
            {
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
            }
        }
        catch (Exception)
        {
            // The broker may be gone already.
        }

        _client.Dispose();
        _stop.Dispose();
    }

    private async Task ConnectAndSubscribeAsync(CancellationToken ct)
    {
        var r = await _client.ConnectAsync(_options, ct);
        if (!r.IsSessionPresent)
        {
            await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                .WithTopicFilter(_filter, MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
        }
    }

    private async Task KeepConnectedAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!_client.IsConnected)
                {
                    await ConnectAndSubscribeAsync(ct);
                }

                await Task.Delay(50, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception)
            {
                try
                {
                    await Task.Delay(100, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}

/// <summary>Parses a result payload.</summary>
public static class Payloads
{
    public static long Seq(this Received r) => r.Json["seq"]!.GetValue<long>();

    public static bool Historical(this Received r) => r.Json["historical"]!.GetValue<bool>();

    public static JsonElement Element(this Received r) => JsonDocument.Parse(r.Payload).RootElement;
}
