using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Cli.Bench;

/// <summary>One result as the subscriber received it: when (a Stopwatch timestamp), which image, which model, and the
/// stage latencies the daemon put in the payload.</summary>
public sealed record ReceivedResult(long ReceivedTimestamp, string ImageId, string MessageId, string ModelSha256, bool Historical,
    double DecodeMs, double PreprocessMs, double InferMs, double TotalMs);

/// <summary>An MQTT subscriber on a node's result topics that time-stamps every result on arrival. A result received
/// here was accepted by the broker (QoS 1) and routed on: the end of the pipeline's trip. Thread-safe.</summary>
public sealed class BenchSubscriber : IAsyncDisposable
{
    private readonly IMqttClient _client;
    private readonly ConcurrentQueue<ReceivedResult> _results = new();
    private readonly SemaphoreSlim _arrived = new(0, int.MaxValue);

    private BenchSubscriber(IMqttClient client) => _client = client;

    /// <summary>Every result received so far, in arrival order.</summary>
    public IReadOnlyList<ReceivedResult> Results => _results.ToArray();

    /// <summary>How many results were received.</summary>
    public int Count => _results.Count;

    /// <summary>Connects and subscribes to <c>fma/&lt;node&gt;/+/result</c> at QoS 1.</summary>
    public static async Task<BenchSubscriber> ConnectAsync(string host, int port, string node, CancellationToken ct)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var s = new BenchSubscriber(client);
        client.ApplicationMessageReceivedAsync += e =>
        {
            var now = Stopwatch.GetTimestamp();
            using var doc = JsonDocument.Parse(e.ApplicationMessage.Payload);
            var r = doc.RootElement;
            var lat = r.GetProperty("latency_ms");
            s._results.Enqueue(new ReceivedResult(now, r.GetProperty("image").GetProperty("id").GetString() ?? "",
                r.GetProperty("message_id").GetString() ?? "", r.GetProperty("model").GetProperty("sha256").GetString() ?? "",
                r.TryGetProperty("historical", out var h) && h.GetBoolean(),
                lat.GetProperty("decode").GetDouble(), lat.GetProperty("preprocess").GetDouble(), lat.GetProperty("infer").GetDouble(),
                lat.GetProperty("total").GetDouble()));
            s._arrived.Release();
            return Task.CompletedTask;
        };
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(host, port)
            .WithClientId("fma-edge-bench-" + Guid.NewGuid().ToString("N")[..8]).WithCleanSession().Build(), ct);
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"fma/{node}/+/result", MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
        return s;
    }

    /// <summary>Waits until at least <paramref name="count"/> results arrived; false when <paramref name="timeout"/>
    /// passed first.</summary>
    public async Task<bool> WaitForAsync(int count, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Count < count)
        {
            var left = TimeSpan.FromSeconds((deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            await _arrived.WaitAsync(left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1), ct);
        }

        return true;
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
        _arrived.Dispose();
    }
}
