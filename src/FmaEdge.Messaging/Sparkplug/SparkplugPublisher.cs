using System.Text.Json;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Sparkplug.Protobuf;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Protocol;
using static FmaEdge.Messaging.Sparkplug.Protobuf.Payload.Types;

namespace FmaEdge.Messaging.Sparkplug;

/// <summary>Where the Sparkplug connection is, and what it has sent; for status and stats.</summary>
public sealed record SparkplugHealth(string State, string EdgeNode, long BdSeq, long Backlog, long DroppedByCap, long Births,
    long DataMessages, long HistoricalMessages, long RebirthRequests, string? LastError, DateTimeOffset? LastErrorAt);

/// <summary>Sparkplug B output beside the JSON contract (docs/mqtt.md, "Sparkplug B"): the node is an edge node
/// (NBIRTH/NDATA/NDEATH under spBv1.0/&lt;group&gt;/…/&lt;edge node&gt;), each source a device (DBIRTH/DDATA). Results come from
/// the outbox's durable "sparkplug" feed, committed in the same transaction as the JSON result, so nothing is lost while
/// the broker is down: what waited is sent after the next births with is_historical set (store and forward). One loop
/// owns the connection and every publish, so seq (0..255, reset at NBIRTH) runs in the order messages are sent; bdSeq
/// advances at every CONNECT and is kept in the outbox file, so it also advances across daemon restarts.</summary>
public sealed partial class SparkplugPublisher : IHostedService, IAsyncDisposable
{
    /// <summary>The outbox feed the Sparkplug publisher drains.</summary>
    public const string FeedName = "sparkplug";

    private const string Namespace = "spBv1.0";
    private const int FeedBatch = 50;
    // The daemon hands over the model right after start; births wait this long for it rather than birth twice.
    private static readonly TimeSpan ModelWait = TimeSpan.FromSeconds(5);

    private readonly MqttOptions _o;
    private readonly MqttPublisher _publisher;
    private readonly SqliteOutbox _outbox;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly IMqttClient _client;
    private readonly string _clientId;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Lock _gate = new();
    private readonly List<string> _devices = [];
    private readonly Dictionary<string, object?> _nodeValues = [];
    private readonly Dictionary<string, object?> _nodeValuesSent = [];
    // Loop-only state: the metrics each device was born with, and its last live values (for the next birth).
    private readonly Dictionary<string, Dictionary<string, MetricDefinition>> _deviceMetrics = [];
    private readonly Dictionary<string, Dictionary<string, object?>> _lastValues = [];
    private ModelMessage? _model;
    private DateTimeOffset _startedAt;
    private CancellationTokenSource? _stop;
    private Task? _loop;
    private string _state = "stopped";
    private string? _lastError;
    private DateTimeOffset? _lastErrorAt;
    private long _bdSeq = -1;
    private int _seq;
    private long _bornAtMs;
    private bool _born;
    private bool? _hostOnline;
    private long _hostStateTimestamp = long.MinValue;
    private int _rebirthRequested;
    private int _nodeDataDue;
    private long _births;
    private long _dataMessages;
    private long _historical;
    private long _rebirthRequests;

    /// <summary>Takes the broker, login and TLS from the JSON publisher's options, and its outbox.</summary>
    public SparkplugPublisher(MqttOptions options, MqttPublisher publisher, ILogger<SparkplugPublisher>? logger = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(publisher);
        if (!options.Sparkplug.Enabled)
        {
            throw new ArgumentException("Mqtt.Sparkplug.Enabled is false");
        }

        _o = options.Clone();
        _publisher = publisher;
        _outbox = publisher.Outbox;
        _log = (ILogger?)logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        GroupId = _o.Sparkplug.GroupId.Trim();
        EdgeNodeId = SparkplugOptions.ToSparkplugId(string.IsNullOrWhiteSpace(_o.Sparkplug.EdgeNodeId) ? _o.EffectiveNodeName : _o.Sparkplug.EdgeNodeId);
        _clientId = string.IsNullOrWhiteSpace(_o.Sparkplug.ClientId) ? _o.EffectiveClientId + "-spb" : _o.Sparkplug.ClientId.Trim();
        _nodeValues[SparkplugMetrics.Version] = publisher.Version;
        _nodeValues[SparkplugMetrics.Session] = publisher.Session;
        _client = new MqttClientFactory().CreateMqttClient();
        _client.ApplicationMessageReceivedAsync += OnMessageReceivedAsync;
        _publisher.ResultsCommitted += Wake;
    }

    /// <summary>The Sparkplug group id.</summary>
    public string GroupId { get; }

    /// <summary>The Sparkplug edge node id.</summary>
    public string EdgeNodeId { get; }

    /// <summary>spBv1.0/&lt;group&gt;/&lt;type&gt;/&lt;edge node&gt;[/&lt;device&gt;].</summary>
    public string Topic(string type, string? device = null) =>
        device is null ? $"{Namespace}/{GroupId}/{type}/{EdgeNodeId}" : $"{Namespace}/{GroupId}/{type}/{EdgeNodeId}/{device}";

    /// <summary>Connection state, bdSeq, backlog and counters.</summary>
    public SparkplugHealth Health
    {
        get
        {
            var (depth, dropped) = _outbox.FeedStats(FeedName);
            lock (_gate)
            {
                return new SparkplugHealth(_state, $"{GroupId}/{EdgeNodeId}", Interlocked.Read(ref _bdSeq), depth, dropped,
                    Interlocked.Read(ref _births), Interlocked.Read(ref _dataMessages), Interlocked.Read(ref _historical),
                    Interlocked.Read(ref _rebirthRequests), _lastError, _lastErrorAt);
            }
        }
    }

    /// <summary>Declares the sources as devices, born with the node (call before start; a source first seen in a
    /// result later is added with a rebirth).</summary>
    public void DeclareDevices(IEnumerable<string> sourceIds)
    {
        ArgumentNullException.ThrowIfNull(sourceIds);
        lock (_gate)
        {
            foreach (var id in sourceIds.Select(SparkplugOptions.ToSparkplugId).Where(id => !_devices.Contains(id)))
            {
                _devices.Add(id);
            }
        }
    }

    /// <summary>The model now serving: its metrics change, and so may the devices' level metrics, hence a rebirth.</summary>
    public void SetModel(ModelMessage model)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (_gate)
        {
            _model = model;
            _nodeValues[SparkplugMetrics.ModelId] = model.Id;
            _nodeValues[SparkplugMetrics.ModelVersion] = model.Version;
            _nodeValues[SparkplugMetrics.ModelSha256] = model.Sha256;
            _nodeValues[SparkplugMetrics.ModelProvider] = model.ExecutionProvider;
            _nodeValues[SparkplugMetrics.ModelLevels] = string.Join(",", model.Levels);
        }

        Interlocked.Exchange(ref _rebirthRequested, 1);
        Wake();
    }

    /// <summary>The node's periodic figures; the changed ones go out as NDATA.</summary>
    public void SetStats(StatsMessage stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        lock (_gate)
        {
            _nodeValues[SparkplugMetrics.Health] = stats.Health;
            _nodeValues[SparkplugMetrics.ImagesProcessed] = (ulong)stats.ImagesProcessed;
            _nodeValues[SparkplugMetrics.ImagesFailed] = (ulong)stats.ImagesFailed;
            _nodeValues[SparkplugMetrics.FramesDropped] = (ulong)stats.FramesDropped;
            _nodeValues[SparkplugMetrics.OutboxDepth] = stats.Mqtt is { } m ? (ulong)m.Outbox.Depth : null;
        }

        Interlocked.Exchange(ref _nodeDataDue, 1);
        Wake();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_loop is not null)
        {
            return Task.CompletedTask;
        }

        _startedAt = _time.GetUtcNow();
        _stop = new CancellationTokenSource();
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Sends what the feed holds for up to Mqtt.DrainOnStopSeconds, then the death certificate, then
    /// disconnects with "disconnect with will message" (the broker sends the NDEATH too; hosts ignore the repeat bdSeq).
    /// Bounded: a dead broker costs at most the drain and publish timeouts.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_loop is null || _stop is null)
        {
            return;
        }

        using var stopSource = _stop;
        _stop = null;
        await stopSource.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds + 5), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            LogStopIncomplete(_log, "the Sparkplug loop did not end in time");
        }

        _loop = null;
        if (!_client.IsConnected)
        {
            SetState("stopped");
            return;
        }

        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(TimeSpan.FromSeconds(_o.DrainOnStopSeconds + _o.PublishTimeoutSeconds));
        try
        {
            if (_born)
            {
                var drainUntil = _time.GetUtcNow() + TimeSpan.FromSeconds(_o.DrainOnStopSeconds);
                while (_time.GetUtcNow() < drainUntil && await DrainFeedAsync(budget.Token).ConfigureAwait(false))
                {
                }
            }

            await PublishAsync(Topic("NDEATH"), SparkplugMetrics.Death(Interlocked.Read(ref _bdSeq), _time.GetUtcNow()),
                MqttQualityOfServiceLevel.AtLeastOnce, budget.Token).ConfigureAwait(false);
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder()
                .WithReason(MqttClientDisconnectOptionsReason.DisconnectWithWillMessage).Build(), budget.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogStopIncomplete(_log, Describe(e));
        }

        SetState("stopped");
    }

    public async ValueTask DisposeAsync()
    {
        _publisher.ResultsCommitted -= Wake;
        if (_loop is not null)
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        _client.Dispose();
        _wake.Dispose();
    }

    private void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
        {
            // Already awake, or stopped.
        }
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var attempt = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await ConnectAsync(stop).ConfigureAwait(false);
                attempt = 0;
                await ServeAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                _born = false;
                RecordError(Describe(e));
                SetState("disconnected");
                var delay = Backoff(attempt++);
                LogDisconnected(_log, delay.TotalSeconds, Describe(e));
                await DropConnectionAsync().ConfigureAwait(false);
                try
                {
                    await Task.Delay(delay, _time, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task ConnectAsync(CancellationToken stop)
    {
        SetState("connecting");
        _born = false;
        // Every CONNECT carries the next bdSeq in its will; the NBIRTH that follows repeats it (Sparkplug 3.0 5.1.1).
        var bdSeq = _outbox.NextCounter("sparkplug-bdseq", 256);
        Interlocked.Exchange(ref _bdSeq, bdSeq);
        var options = _publisher.ConnectOptions.BuildSparkplug(_clientId, Topic("NDEATH"), SparkplugMetrics.Death(bdSeq, _time.GetUtcNow()));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(TimeSpan.FromSeconds(_o.ConnectTimeoutSeconds + 1));
        var result = await _client.ConnectAsync(options, timeout.Token).ConfigureAwait(false);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new IOException($"broker refused the Sparkplug connection: {result.ResultCode} {result.ReasonString}");
        }

        // What the host said on an earlier connection does not count: its STATE (retained) arrives with the subscription.
        _hostOnline = null;
        var subscribe = new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(Topic("NCMD"), MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter(Topic("DCMD", "+"), MqttQualityOfServiceLevel.AtLeastOnce);
        if (_o.Sparkplug.PrimaryHostId is { Length: > 0 } host)
        {
            subscribe.WithTopicFilter($"{Namespace}/STATE/{host}", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        var sub = await _client.SubscribeAsync(subscribe.Build(), timeout.Token).ConfigureAwait(false);
        foreach (var item in sub.Items.Where(i => (int)i.ResultCode >= 0x80))
        {
            LogSubscribeRefused(_log, item.TopicFilter.Topic, item.ResultCode.ToString());
        }

        LogConnected(_log, _o.Host, _o.Port, $"{GroupId}/{EdgeNodeId}", bdSeq);
    }

    private async Task ServeAsync(CancellationToken stop)
    {
        var primaryHost = !string.IsNullOrEmpty(_o.Sparkplug.PrimaryHostId);
        if (primaryHost)
        {
            SetState("waiting_for_host");
            while (_hostOnline != true)
            {
                ThrowIfLinkLost();
                await _wake.WaitAsync(TimeSpan.FromSeconds(1), stop).ConfigureAwait(false);
            }
        }

        while (!HasModel() && _time.GetUtcNow() - _startedAt < ModelWait)
        {
            ThrowIfLinkLost();
            await _wake.WaitAsync(TimeSpan.FromMilliseconds(200), stop).ConfigureAwait(false);
        }

        Interlocked.Exchange(ref _rebirthRequested, 0);
        await BirthAsync(stop).ConfigureAwait(false);
        SetState("online");
        while (true)
        {
            stop.ThrowIfCancellationRequested();
            ThrowIfLinkLost();
            if (primaryHost && _hostOnline == false)
            {
                // The primary host went offline: die now and wait for it again, storing meanwhile (5.1.1).
                LogHostOffline(_log, _o.Sparkplug.PrimaryHostId!);
                await PublishAsync(Topic("NDEATH"), SparkplugMetrics.Death(Interlocked.Read(ref _bdSeq), _time.GetUtcNow()),
                    MqttQualityOfServiceLevel.AtLeastOnce, stop).ConfigureAwait(false);
                await DropConnectionAsync().ConfigureAwait(false);
                return;
            }

            if (Interlocked.Exchange(ref _rebirthRequested, 0) == 1)
            {
                await BirthAsync(stop).ConfigureAwait(false);
            }

            var sent = await DrainFeedAsync(stop).ConfigureAwait(false);
            if (Interlocked.Exchange(ref _nodeDataDue, 0) == 1)
            {
                await PublishNodeDataAsync(stop).ConfigureAwait(false);
            }

            if (!sent)
            {
                await _wake.WaitAsync(TimeSpan.FromSeconds(1), stop).ConfigureAwait(false);
            }
        }
    }

    // NBIRTH (seq 0, every node metric with name, alias and current value), then one DBIRTH per device. Results
    // committed before this moment are store-and-forward from now on: sent with is_historical.
    private async Task BirthAsync(CancellationToken stop)
    {
        var now = _time.GetUtcNow();
        _bornAtMs = now.ToUnixTimeMilliseconds();
        _seq = 0;
        string[] devices;
        IReadOnlyList<string> levels;
        Dictionary<string, object?> nodeValues;
        lock (_gate)
        {
            devices = [.. _devices];
            levels = _model?.Levels ?? [];
            nodeValues = new Dictionary<string, object?>(_nodeValues);
        }

        nodeValues[SparkplugMetrics.BdSeq] = Interlocked.Read(ref _bdSeq);
        nodeValues[SparkplugMetrics.Rebirth] = false;
        var nbirth = new Payload { Timestamp = (ulong)_bornAtMs, Seq = NextSeq() };
        nbirth.Metrics.AddRange(SparkplugMetrics.Node.Select(d => SparkplugMetrics.Make(d, nodeValues.GetValueOrDefault(d.Name), now, withName: true)));
        await PublishAsync(Topic("NBIRTH"), nbirth.ToByteArray(), MqttQualityOfServiceLevel.AtMostOnce, stop).ConfigureAwait(false);
        _nodeValuesSent.Clear();
        foreach (var (k, v) in nodeValues)
        {
            _nodeValuesSent[k] = v;
        }

        _deviceMetrics.Clear();
        for (var i = 0; i < devices.Length; i++)
        {
            var defs = SparkplugMetrics.Device(i + 1, levels);
            _deviceMetrics[devices[i]] = defs.ToDictionary(d => d.Name);
            var last = _lastValues.GetValueOrDefault(devices[i]);
            var dbirth = new Payload { Timestamp = (ulong)now.ToUnixTimeMilliseconds(), Seq = NextSeq() };
            dbirth.Metrics.AddRange(defs.Select(d => SparkplugMetrics.Make(d, last?.GetValueOrDefault(d.Name), now, withName: true)));
            await PublishAsync(Topic("DBIRTH", devices[i]), dbirth.ToByteArray(), MqttQualityOfServiceLevel.AtMostOnce, stop).ConfigureAwait(false);
        }

        _born = true;
        Interlocked.Increment(ref _births);
        LogBirth(_log, Interlocked.Read(ref _bdSeq), devices.Length);
    }

    // One DDATA per result from the feed. QoS 0 is what Sparkplug prescribes for data, so a row leaves the feed only
    // after a PINGREQ/PINGRESP round trip on the same connection has shown the broker read everything before it.
    private async Task<bool> DrainFeedAsync(CancellationToken stop)
    {
        var rows = _outbox.PeekFeed(FeedName, FeedBatch);
        if (rows.Count == 0)
        {
            return false;
        }

        var done = new List<long>(rows.Count);
        foreach (var row in rows)
        {
            ResultMessage r;
            try
            {
                r = MessageJson.Deserialize<ResultMessage>(row.Payload);
            }
            catch (JsonException e)
            {
                LogUnreadable(_log, row.RowId, e.Message); // cannot happen with rows this process wrote; never block the feed
                done.Add(row.RowId);
                continue;
            }

            var device = SparkplugOptions.ToSparkplugId(r.Source);
            if (!_deviceMetrics.ContainsKey(device))
            {
                DeclareDevices([r.Source]);
                await BirthAsync(stop).ConfigureAwait(false); // a new device is announced with a full birth sequence
            }

            var historical = row.EnqueuedUnixMs < _bornAtMs;
            var values = SparkplugMetrics.Values(r);
            var metrics = _deviceMetrics[device];
            var ddata = new Payload { Timestamp = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds(), Seq = NextSeq() };
            foreach (var (name, value) in values)
            {
                // A result of an earlier model may name levels the current birth does not have: those are left out.
                if (metrics.TryGetValue(name, out var d))
                {
                    ddata.Metrics.Add(SparkplugMetrics.Make(d, value, r.CapturedAt, withName: false, historical));
                }
            }

            await PublishAsync(Topic("DDATA", device), ddata.ToByteArray(), MqttQualityOfServiceLevel.AtMostOnce, stop).ConfigureAwait(false);
            Interlocked.Increment(ref _dataMessages);
            if (historical)
            {
                Interlocked.Increment(ref _historical);
            }
            else
            {
                _lastValues[device] = values;
            }

            done.Add(row.RowId);
        }

        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
            await _client.PingAsync(timeout.Token).ConfigureAwait(false);
        }

        _outbox.RemoveFromFeed(FeedName, done);
        return true;
    }

    private async Task PublishNodeDataAsync(CancellationToken stop)
    {
        var now = _time.GetUtcNow();
        var ndata = new Payload { Timestamp = (ulong)now.ToUnixTimeMilliseconds() };
        lock (_gate)
        {
            foreach (var d in SparkplugMetrics.Node.Skip(2))
            {
                var v = _nodeValues.GetValueOrDefault(d.Name);
                if (!Equals(v, _nodeValuesSent.GetValueOrDefault(d.Name)))
                {
                    ndata.Metrics.Add(SparkplugMetrics.Make(d, v, now, withName: false));
                    _nodeValuesSent[d.Name] = v;
                }
            }
        }

        if (ndata.Metrics.Count == 0)
        {
            return;
        }

        ndata.Seq = NextSeq();
        await PublishAsync(Topic("NDATA"), ndata.ToByteArray(), MqttQualityOfServiceLevel.AtMostOnce, stop).ConfigureAwait(false);
    }

    private bool HasModel()
    {
        lock (_gate)
        {
            return _model is not null;
        }
    }

    private ulong NextSeq()
    {
        var s = _seq;
        _seq = (_seq + 1) % 256;
        return (ulong)s;
    }

    private async Task PublishAsync(string topic, byte[] payload, MqttQualityOfServiceLevel qos, CancellationToken stop)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
        var message = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).Build();
        var result = await _client.PublishAsync(message, timeout.Token).ConfigureAwait(false);
        if (!result.IsSuccess)
        {
            throw new IOException($"broker refused {topic}: {result.ReasonCode} {result.ReasonString}");
        }
    }

    private Task OnMessageReceivedAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        var topic = e.ApplicationMessage.Topic;
        try
        {
            if (topic == Topic("NCMD"))
            {
                var command = Payload.Parser.ParseFrom(e.ApplicationMessage.Payload);
                if (SparkplugMetrics.IsRebirthRequest(command))
                {
                    Interlocked.Increment(ref _rebirthRequests);
                    Interlocked.Exchange(ref _rebirthRequested, 1);
                    LogRebirthRequested(_log);
                    Wake();
                }
            }
            else if (topic == $"{Namespace}/STATE/{_o.Sparkplug.PrimaryHostId}")
            {
                // {"online": bool, "timestamp": ms}; an older timestamp than the last one seen is stale (5.1.1).
                using var json = JsonDocument.Parse(e.ApplicationMessage.Payload);
                var online = json.RootElement.GetProperty("online").GetBoolean();
                var timestamp = json.RootElement.TryGetProperty("timestamp", out var t) ? t.GetInt64() : long.MinValue;
                if (timestamp >= _hostStateTimestamp)
                {
                    _hostStateTimestamp = timestamp;
                    _hostOnline = online;
                    Wake();
                }
            }
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            LogBadCommand(_log, topic, ex.Message);
        }

        return Task.CompletedTask;
    }

    private void ThrowIfLinkLost()
    {
        if (!_client.IsConnected)
        {
            throw new IOException("connection to the broker lost");
        }
    }

    private async Task DropConnectionAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Already gone is fine.
        }
    }

    private TimeSpan Backoff(int attempt) => ConnectionRetry.Delay(_o, attempt);

    private void SetState(string state)
    {
        lock (_gate)
        {
            _state = state;
        }
    }

    private void RecordError(string error)
    {
        lock (_gate)
        {
            _lastError = error;
            _lastErrorAt = _time.GetUtcNow();
        }
    }

    private static string Describe(Exception ex) => ConnectionRetry.Describe(ex);

    [LoggerMessage(EventId = 6200, Level = LogLevel.Information, Message = "Sparkplug B connected to {Host}:{Port} as edge node {EdgeNode}, bdSeq {BdSeq}")]
    private static partial void LogConnected(ILogger logger, string host, int port, string edgeNode, long bdSeq);

    [LoggerMessage(EventId = 6201, Level = LogLevel.Warning, Message = "Sparkplug B connection lost or refused, retrying in {DelaySeconds:F1} s (results wait in the feed): {Error}")]
    private static partial void LogDisconnected(ILogger logger, double delaySeconds, string error);

    [LoggerMessage(EventId = 6202, Level = LogLevel.Information, Message = "Sparkplug B birth sent: NBIRTH bdSeq {BdSeq} and {Devices} DBIRTH(s)")]
    private static partial void LogBirth(ILogger logger, long bdSeq, int devices);

    [LoggerMessage(EventId = 6203, Level = LogLevel.Information, Message = "Sparkplug B rebirth requested by NCMD")]
    private static partial void LogRebirthRequested(ILogger logger);

    [LoggerMessage(EventId = 6204, Level = LogLevel.Warning, Message = "Sparkplug B message on {Topic} not understood: {Error}")]
    private static partial void LogBadCommand(ILogger logger, string topic, string error);

    [LoggerMessage(EventId = 6205, Level = LogLevel.Warning, Message = "Sparkplug B primary host {Host} is offline: NDEATH sent, storing until it is back")]
    private static partial void LogHostOffline(ILogger logger, string host);

    [LoggerMessage(EventId = 6206, Level = LogLevel.Warning, Message = "Sparkplug B subscription to {Topic} refused by the broker ({Code}): commands will not arrive")]
    private static partial void LogSubscribeRefused(ILogger logger, string topic, string code);

    [LoggerMessage(EventId = 6207, Level = LogLevel.Error, Message = "Sparkplug B feed row {RowId} is not a result, skipped: {Error}")]
    private static partial void LogUnreadable(ILogger logger, long rowId, string error);

    [LoggerMessage(EventId = 6208, Level = LogLevel.Warning, Message = "Sparkplug B clean stop incomplete: {Error}")]
    private static partial void LogStopIncomplete(ILogger logger, string error);
}
