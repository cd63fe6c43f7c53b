using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;

namespace FmaEdge.Cli.Commands;

/// <summary>`fma-edge watch`: subscribes to a broker and prints each result as it arrives (level answers with
/// confidences, the coarse answer, latency), plus events and status. For operators and the demo. Stateless.</summary>
public static class WatchCommand
{
    public static Command Create(CliConsole console)
    {
        var host = new Option<string>("--host") { Description = "Broker host", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Broker port", DefaultValueFactory = _ => 1883 };
        var topic = new Option<string>("--topic") { Description = "Topic filter", DefaultValueFactory = _ => "fma/#" };
        var count = new Option<int>("--count") { Description = "Exit after this many results (0 = run until Ctrl-C)", DefaultValueFactory = _ => 0 };
        var timeout = new Option<double>("--timeout") { Description = "Exit (code 1) when no result arrives for this many seconds (0 = never)", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print raw payloads, one JSON document per line" };
        var cmd = new Command("watch", "Subscribe to the MQTT broker and print results, events and status as they arrive.")
        {
            host, port, topic, count, timeout, json,
        };
        cmd.SetAction((r, ct) => RunAsync(console, r.GetValue(host)!, r.GetValue(port), r.GetValue(topic)!, r.GetValue(count),
            r.GetValue(timeout), r.GetValue(json), ct));
        return cmd;
    }

    private static async Task<int> RunAsync(CliConsole console, string host, int port, string topic, int count, double timeout, bool raw,
        CancellationToken ct)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var results = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lastResult = DateTime.UtcNow;
        var gate = new object();
        client.ApplicationMessageReceivedAsync += e =>
        {
            var payload = Encoding.UTF8.GetString(e.ApplicationMessage.Payload);
            var t = e.ApplicationMessage.Topic;
            lock (gate)
            {
                if (raw)
                {
                    console.Out.WriteLine(payload);
                }
                else
                {
                    console.Out.WriteLine(Describe(t, payload));
                }

                if (t.EndsWith("/result", StringComparison.Ordinal))
                {
                    lastResult = DateTime.UtcNow;
                    if (++results == count)
                    {
                        done.TrySetResult();
                    }
                }
            }

            return Task.CompletedTask;
        };

        try
        {
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer(host, port).WithClientId("fma-edge-watch-" + Guid.NewGuid().ToString("N")[..8])
                .WithCleanSession().Build(), ct);
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
        {
            console.Error.WriteLine($"fma-edge watch: cannot connect to {host}:{port}: {e.Message}");
            return 2;
        }

        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(topic, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
        console.Error.WriteLine($"watching {topic} on {host}:{port} (Ctrl-C to stop)");
        try
        {
            while (!done.Task.IsCompleted)
            {
                await Task.WhenAny(done.Task, Task.Delay(250, ct));
                if (timeout > 0 && (DateTime.UtcNow - lastResult).TotalSeconds > timeout)
                {
                    console.Error.WriteLine($"fma-edge watch: no result for {timeout:0} s; {results} received");
                    return count > 0 ? 1 : 0;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await client.DisconnectAsync(cancellationToken: CancellationToken.None);
        return 0;
    }

    /// <summary>One line per message: results as "source #seq image -> L1 (p) > L2 (p) > L3 (p) | coarse ...".</summary>
    internal static string Describe(string topic, string payload)
    {
        JsonNode? doc;
        try
        {
            doc = JsonNode.Parse(payload);
        }
        catch (System.Text.Json.JsonException)
        {
            return $"{topic}: {payload}";
        }

        var inv = CultureInfo.InvariantCulture;
        if (topic.EndsWith("/result", StringComparison.Ordinal) && doc?["answer"]?["nodes"] is JsonArray nodes)
        {
            var path = string.Join(" > ", nodes.Select(n => $"{n?["label"]} ({(double?)n?["confidence"] ?? 0:P0})"));
            var coarse = doc["coarse"];
            var depth = (int?)coarse?["depth"] ?? 0;
            var coarseText = depth == nodes.Count ? "full answer" : depth == 0 ? "no level passes its bar" : $"sure up to level {depth}: {coarse?["label"]}";
            var flags = ((bool?)doc["historical"] ?? false ? " [historical]" : "") + ((bool?)doc["duplicate"] ?? false ? " [duplicate]" : "");
            var latency = (double?)doc["latency_ms"]?["total"] ?? 0;
            return string.Create(inv, $"{doc["source"]} #{doc["seq"]} {doc["image"]?["id"]}: {path} | {coarseText} | {latency:0} ms{flags}");
        }

        if (topic.EndsWith("/events", StringComparison.Ordinal))
        {
            return $"event {doc?["kind"]} ({doc?["severity"]}): {doc?["message"]}";
        }

        if (topic.EndsWith("/status", StringComparison.Ordinal))
        {
            return $"status {doc?["node"]}: {doc?["state"]}, health {doc?["health"] ?? "-"}, model {doc?["model"]?["id"] ?? "-"}";
        }

        if (topic.EndsWith("/model", StringComparison.Ordinal))
        {
            return $"model {doc?["id"] ?? doc?["model_id"]} ({doc?["execution_provider"]}) active";
        }

        return topic.EndsWith("/stats", StringComparison.Ordinal)
            ? string.Create(inv, $"stats: {doc?["images_processed"]} processed, {doc?["images_failed"]} failed, health {doc?["health"]}")
            : $"{topic}: {payload}";
    }
}
