using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Fleet;

/// <summary>What the broker knows of one node: its retained status (online/offline, from the node or its last will),
/// model and stats. Fields the node has not published yet are null. Immutable.</summary>
public sealed record FleetNode
{
    /// <summary>The node's topic prefix (e.g. "fma/orin-01"): the key, unique on a broker.</summary>
    public required string Prefix { get; init; }

    public string? Node { get; init; }

    /// <summary>"online" or "offline" (null: no status seen).</summary>
    public string? State { get; init; }

    /// <summary>Why offline: "stopped" (clean) or "connection_lost" (the broker sent the will).</summary>
    public string? Reason { get; init; }

    /// <summary>The node's own verdict ("healthy", "degraded", "starting"), from its status or stats.</summary>
    public string? Health { get; init; }

    public string? Version { get; init; }
    public string? Session { get; init; }
    public string? ModelId { get; init; }
    public string? ModelVersion { get; init; }
    public string? ModelSha256 { get; init; }
    public string? Provider { get; init; }

    /// <summary>Images per second over the sources' last 10 s, from the latest stats.</summary>
    public double? ImagesPerSecond { get; init; }

    public long? ImagesProcessed { get; init; }
    public long? ImagesFailed { get; init; }
    public long? OutboxDepth { get; init; }

    /// <summary>The newest timestamp of anything the node published (status, model or stats).</summary>
    public DateTimeOffset? LastSeen { get; init; }

    /// <summary>Online and healthy: the only state that does not need a person.</summary>
    public bool IsHealthy => State == StatusMessage.Online && Health == "healthy";
}

/// <summary>Watches every node on one broker through their retained topics (<c>&lt;prefix&gt;/status</c>, <c>/model</c>,
/// <c>/stats</c>), so a fleet view needs nothing from the nodes but the broker. Connects with the same options as a
/// publisher (host, TLS, credentials), without a will. Thread-safe.</summary>
public sealed class FleetMonitor : IAsyncDisposable
{
    private readonly MqttOptions _o;
    private readonly string _prefixFilter;
    private readonly IMqttClient _client;
    private readonly ConcurrentDictionary<string, FleetNode> _nodes = new(StringComparer.Ordinal);

    /// <summary>Creates the monitor (not connected). <paramref name="prefixFilter"/> matches the nodes' topic prefixes
    /// (default "fma/+": every node with the default prefix "fma/&lt;node&gt;").</summary>
    public FleetMonitor(MqttOptions connection, string prefixFilter = "fma/+")
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefixFilter);
        _o = connection;
        _prefixFilter = prefixFilter.TrimEnd('/');
        _client = new MqttClientFactory().CreateMqttClient();
        _client.ApplicationMessageReceivedAsync += e =>
        {
            Take(e.ApplicationMessage.Topic, e.ApplicationMessage.Payload.ToArray());
            return Task.CompletedTask;
        };
    }

    /// <summary>Raised after a node's record changed (from the client's receive thread).</summary>
    public event Action<FleetNode>? Changed;

    /// <summary>Every node seen so far, by prefix.</summary>
    public IReadOnlyList<FleetNode> Nodes => [.. _nodes.Values.OrderBy(n => n.Prefix, StringComparer.Ordinal)];

    /// <summary>"host:port" of the broker.</summary>
    public string Broker => new MqttConnectOptionsFactory(_o).Describe();

    /// <summary>Connects and subscribes; the retained messages arrive right after. Throws when the broker cannot be
    /// reached or refuses the login within the connect timeout.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var id = string.IsNullOrWhiteSpace(_o.ClientId) ? "fma-edge-fleet-" + Guid.NewGuid().ToString("N")[..8] : _o.ClientId;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(_o.ConnectTimeoutSeconds));
        await _client.ConnectAsync(new MqttConnectOptionsFactory(_o).BuildObserver(id), deadline.Token).ConfigureAwait(false);
        var subscribe = new MqttClientSubscribeOptionsBuilder();
        foreach (var t in new[] { "status", "model", "stats" })
        {
            subscribe.WithTopicFilter($"{_prefixFilter}/{t}", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await _client.SubscribeAsync(subscribe.Build(), deadline.Token).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_client.IsConnected)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _client.DisconnectAsync(new MqttClientDisconnectOptions(), cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or MQTTnet.Exceptions.MqttCommunicationException)
        {
            // Leaving anyway.
        }

        _client.Dispose();
    }

    // One message: which node (the topic minus its last level), and what it says. A payload that is not ours is ignored.
    private void Take(string topic, byte[] payload)
    {
        var slash = topic.LastIndexOf('/');
        if (slash <= 0 || payload.Length == 0)
        {
            return;
        }

        var prefix = topic[..slash];
        JsonElement j;
        try
        {
            using var doc = JsonDocument.Parse(payload);
            j = doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return;
        }

        if (j.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        var node = _nodes.AddOrUpdate(prefix, p => Apply(new FleetNode { Prefix = p }, topic[(slash + 1)..], j), (_, n) => Apply(n, topic[(slash + 1)..], j));
        Changed?.Invoke(node);
    }

    private static FleetNode Apply(FleetNode n, string kind, JsonElement j)
    {
        var seen = Time(j, "timestamp") ?? Time(j, "loaded_at");
        n = n with { Node = Str(j, "node") ?? n.Node, LastSeen = seen > n.LastSeen || n.LastSeen is null ? seen : n.LastSeen };
        switch (kind)
        {
            case "status":
                var model = j.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
                var online = Str(j, "state") == StatusMessage.Online;
                return n with
                {
                    State = Str(j, "state"),
                    Reason = online ? null : Str(j, "reason"),
                    Health = online ? Str(j, "health") ?? n.Health : null,
                    Version = Str(j, "version"),
                    Session = Str(j, "session"),
                    ModelId = model.ValueKind == JsonValueKind.Object ? Str(model, "id") : n.ModelId,
                    ModelVersion = model.ValueKind == JsonValueKind.Object ? Str(model, "version") : n.ModelVersion,
                    ModelSha256 = model.ValueKind == JsonValueKind.Object ? Str(model, "sha256") : n.ModelSha256,
                    Provider = model.ValueKind == JsonValueKind.Object ? Str(model, "execution_provider") : n.Provider,
                };
            case "model":
                return n with
                {
                    ModelId = Str(j, "id"),
                    ModelVersion = Str(j, "version"),
                    ModelSha256 = Str(j, "sha256"),
                    Provider = Str(j, "execution_provider"),
                };
            case "stats":
                double? fps = null;
                if (j.TryGetProperty("sources", out var sources) && sources.ValueKind == JsonValueKind.Object)
                {
                    fps = sources.EnumerateObject().Sum(s => s.Value.TryGetProperty("fps", out var f) && f.ValueKind == JsonValueKind.Number ? f.GetDouble() : 0);
                }

                long? depth = j.TryGetProperty("mqtt", out var mq) && mq.TryGetProperty("outbox", out var ob) && ob.TryGetProperty("depth", out var d)
                    ? d.GetInt64() : null;
                return n with
                {
                    // A stats message from a session the status says is over must not turn an offline node healthy.
                    Health = n.State == StatusMessage.Offline && Str(j, "session") == n.Session ? n.Health : Str(j, "health") ?? n.Health,
                    ImagesPerSecond = fps,
                    ImagesProcessed = Long(j, "images_processed"),
                    ImagesFailed = Long(j, "images_failed"),
                    OutboxDepth = depth,
                };
            default:
                return n;
        }
    }

    private static string? Str(JsonElement j, string name) => j.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Long(JsonElement j, string name) => j.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    private static DateTimeOffset? Time(JsonElement j, string name) =>
        Str(j, name) is { } s && DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var t) ? t : null;
}
