using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using FmaEdge.Core.Decoding;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Publishing;

/// <summary>A change of <see cref="MqttPublisher.State"/>, with the reason (error text) when it was lost.</summary>
public sealed record ConnectionStateChange(ConnectionState State, ConnectionState Previous, string? Reason, DateTimeOffset At);

/// <summary>Publishes results and events through a durable outbox, and status/model/stats directly, to one
/// broker; connects and reconnects with backoff on its own and keeps accepting results while the broker is
/// down. Every method is thread-safe and may be called concurrently from any thread; results and events are
/// published in the order their Commit/Publish calls returned.</summary>
/// <remarks>
/// Lifecycle: construct (opens the outbox, fails fast on bad options or an unusable file) -> StartAsync
/// (returns at once; connecting happens in the background) -> CommitResult/PublishEvent/SetModelAsync/
/// PublishStatsAsync from anywhere -> StopAsync (drains for up to DrainOnStopSeconds, publishes retained
/// "offline", disconnects cleanly) -> DisposeAsync. Works as an IHostedService.
/// </remarks>
public sealed partial class MqttPublisher : IHostedService, IAsyncDisposable
{
    private const int PeekBatch = 100;

    // Delivered (PUBACK) but not yet deleted because the outbox could not write; touched by the sender loop only.
    private readonly HashSet<long> _ackedNotRemoved = [];

    private readonly MqttOptions _o;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly SqliteOutbox _outbox;
    private readonly MqttConnectOptionsFactory _connectOptions;
    private readonly IMqttClient _client;
    private readonly string _broker;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Lock _stateGate = new();
    private readonly List<Channel<ConnectionStateChange>> _watchers = [];
    private readonly DateTimeOffset _startedAt;
    private CancellationTokenSource? _stop;
    private Task? _loop;
    private ModelMessage? _model;
    private string? _health;
    private ConnectionState _state = ConnectionState.Stopped;
    private DateTimeOffset? _connectedSince;
    private DateTimeOffset? _disconnectedSince;
    private string? _lastError;
    private DateTimeOffset? _lastErrorAt;
    private DateTimeOffset _lastOutboxFullEvent = DateTimeOffset.MinValue;
    private long _pendingCapDrops;
    private long _generation; // connection number; 0 while no connection has been made in this process
    private volatile bool _connected;
    private volatile bool _stopping;
    private long _connects;
    private long _published;
    private long _acked;
    private long _failed;
    private long _replayed;
    private long _rejected;
    private long _statsDropped;
    private int _disposed;

    /// <summary>Validates the options and opens the outbox. <paramref name="version"/> is the daemon version for
    /// status; <paramref name="session"/> defaults to a new UUID v7 (one per daemon start).</summary>
    public MqttPublisher(MqttOptions options, string version, ILogger<MqttPublisher>? logger = null,
        TimeProvider? time = null, string? session = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        _o = options.Clone();
        _log = (ILogger?)logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        Version = version;
        Session = session ?? MessageIdGenerator.NewId(_time.GetUtcNow());
        Node = _o.EffectiveNodeName;
        Topics = new Topics(_o.TopicPrefix, Node);
        _startedAt = _time.GetUtcNow();
        _connectOptions = new MqttConnectOptionsFactory(_o);
        _broker = _connectOptions.Describe();
        _outbox = new SqliteOutbox(_o.OutboxPath, Session, _o.OutboxMaxMessages, _o.OutboxMaxBytes, _time);
        if (_outbox.Recovery is { } recovery)
        {
            LogOutboxRecovered(_log, recovery);
            PublishEvent(EventKinds.OutboxRecovered, EventSeverity.Error, recovery, details: new JsonObject { ["path"] = _outbox.Path });
        }

        _outbox.PruneJournal(_startedAt - TimeSpan.FromDays(_o.JournalRetentionDays));
        _client = new MqttClientFactory().CreateMqttClient();
        _client.DisconnectedAsync += OnDisconnectedAsync;
    }

    /// <summary>This run's id (in every payload); a new one at every daemon start.</summary>
    public string Session { get; }

    /// <summary>Node name in topics and payloads.</summary>
    public string Node { get; }

    /// <summary>Daemon version reported in status.</summary>
    public string Version { get; }

    /// <summary>The topic tree.</summary>
    public Topics Topics { get; }

    /// <summary>Full path of the outbox database.</summary>
    public string OutboxPath => _outbox.Path;

    /// <summary>Current connection state.</summary>
    public ConnectionState State
    {
        get
        {
            lock (_stateGate)
            {
                return _state;
            }
        }
    }

    /// <summary>Raised on every state change, on the thread that saw it; handlers must be quick and not throw.</summary>
    public event EventHandler<ConnectionStateChange>? StateChanged;

    /// <summary>Counters, connection and outbox depth for status and stats.</summary>
    public PublisherHealth Health
    {
        get
        {
            lock (_stateGate)
            {
                var ob = _outbox.Stats;
                return new PublisherHealth(_state, _broker, _connectedSince, _disconnectedSince, _lastError,
                    _lastErrorAt, Interlocked.Read(ref _connects), Interlocked.Read(ref _published), Interlocked.Read(ref _acked),
                    Interlocked.Read(ref _failed), Interlocked.Read(ref _replayed), Interlocked.Read(ref _rejected),
                    ob.DroppedByCap, Interlocked.Read(ref _statsDropped), ob);
            }
        }
    }

    /// <summary>The current state, then every change until cancelled.</summary>
    public async IAsyncEnumerable<ConnectionStateChange> WatchStateAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var ch = Channel.CreateUnbounded<ConnectionStateChange>(new UnboundedChannelOptions { SingleReader = true });
        lock (_stateGate)
        {
            ch.Writer.TryWrite(new ConnectionStateChange(_state, _state, _lastError, _time.GetUtcNow()));
            _watchers.Add(ch);
        }

        try
        {
            await foreach (var c in ch.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return c;
            }
        }
        finally
        {
            lock (_stateGate)
            {
                _watchers.Remove(ch);
            }
        }
    }

    /// <summary>Durably queues a result (built by <see cref="ResultMessage.From"/>) for &lt;prefix&gt;/&lt;source&gt;/result
    /// with its identity assigned in the storing transaction: a new message id, this session, the source's next seq, this
    /// node, the commit time as enqueued_at. When
    /// <paramref name="fileKey"/> is given, journals (source, fileKey) -> message id in the same transaction.
    /// When the key was journalled before, <paramref name="policy"/> decides (skip, or publish flagged
    /// duplicate). Returns once the row is on disk (fsync), so the caller may then move/delete the input
    /// file. Throws (e.g. SqliteException when the disk is full) when it could not be stored: keep the input.</summary>
    public JournalCommit CommitResult(ResultMessage result, string? fileKey = null, DuplicatePolicy policy = DuplicatePolicy.Skip)
    {
        ArgumentNullException.ThrowIfNull(result);
        return CommitResults([(result, fileKey)], policy)[0];
    }

    /// <summary>Group commit of several results: one transaction and one fsync for all of them, all or nothing
    /// (throws with none stored). Each is judged as <see cref="CommitResult"/> would judge it, in order.</summary>
    public IReadOnlyList<JournalCommit> CommitResults(IReadOnlyList<(ResultMessage Result, string? FileKey)> results, DuplicatePolicy policy = DuplicatePolicy.Skip)
    {
        ArgumentNullException.ThrowIfNull(results);
        ThrowIfDisposed();
        var now = _time.GetUtcNow();
        var rows = results.Select(r => new ResultToCommit(Topics.Result(r.Result.Source), r.Result with { Node = Node, EnqueuedAt = now }, r.FileKey)).ToList();
        var (commits, drop) = _outbox.CommitResults(rows, policy, CurrentGeneration);
        AfterInsert(drop);
        return commits;
    }

    /// <summary>The message id under which (source, fileKey) was published, or null when it was not (or its
    /// journal entry expired). Lets the daemon skip re-classifying a file after a crash.</summary>
    public string? FindPublished(string source, string fileKey)
    {
        ThrowIfDisposed();
        return _outbox.FindJournalled(source, fileKey);
    }

    /// <summary>Durably queues an event for &lt;prefix&gt;/events with a new message id assigned by the outbox, filling
    /// session, node and timestamp when left empty. Returns the event as queued.</summary>
    public EventMessage PublishEvent(EventMessage e)
    {
        ArgumentNullException.ThrowIfNull(e);
        ThrowIfDisposed();
        var filled = e with
        {
            Node = string.IsNullOrEmpty(e.Node) ? Node : e.Node,
            Timestamp = e.Timestamp == default ? _time.GetUtcNow() : e.Timestamp,
        };
        try
        {
            var (stored, _, drop) = _outbox.EnqueueEvent(Topics.Events, filled, CurrentGeneration);
            AfterInsert(drop);
            return stored;
        }
        catch (Microsoft.Data.Sqlite.SqliteException ex) when (_connected)
        {
            // The outbox cannot store it (disk full, I/O error). Events are how the floor learns why the node struggles,
            // and "disk full" is exactly when they cannot be stored: send this one directly, QoS 1 without durability
            // (lost only if the link fails too). Results are never sent this way: they must be stored first.
            var direct = filled with
            {
                MessageId = _outbox.NewUnstoredMessageId(),
                Session = string.IsNullOrEmpty(filled.Session) ? Session : filled.Session,
            };
            LogEventNotStored(_log, direct.Kind, ex.Message);
            _ = SendDirectAsync(Topics.Events, MessageJson.Serialize(direct));
            return direct;
        }
    }

    private async Task SendDirectAsync(string topic, byte[] payload)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
            await _client.PublishAsync(Message(topic, Stamp(payload, historical: false), MqttQualityOfServiceLevel.AtLeastOnce, retain: false), cts.Token)
                .ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            RecordError("direct event: " + ex.Message);
        }
    }

    /// <summary>Shorthand for <see cref="PublishEvent(EventMessage)"/>.</summary>
    public EventMessage PublishEvent(string kind, string severity, string message, string? source = null, JsonObject? details = null) =>
        PublishEvent(new EventMessage { Kind = kind, Severity = severity, Message = message, Source = source, Details = details });

    /// <summary>Sets the serving model: published retained on &lt;prefix&gt;/model now when connected (and status
    /// "online" again, which names the model), and at every later connect. Not stored in the outbox: only the
    /// latest model matters.</summary>
    public async Task SetModelAsync(ModelMessage model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ThrowIfDisposed();
        var filled = model with { Node = Node, Session = Session };
        Volatile.Write(ref _model, filled);
        if (_connected)
        {
            try
            {
                await PublishRetainedStateAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // The connect path republishes it; a lost connection is handled by the loop.
                RecordError("publishing model: " + ex.Message);
            }
        }
    }

    /// <summary>Sets the health verdict carried by the retained "online" status and republishes it when connected
    /// and changed. Cheap when unchanged; call it whenever the daemon's verdict may have changed.</summary>
    public async Task SetHealthAsync(string? health, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (Interlocked.Exchange(ref _health, health) == health || !_connected)
        {
            return;
        }

        try
        {
            await PublishRetainedStateAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            RecordError("publishing status: " + ex.Message);
        }
    }

    /// <summary>Publishes stats (QoS 0) when connected, filling node, session, timestamp and the MQTT section;
    /// returns false (and counts it) when not connected: stats are never queued.</summary>
    public async Task<bool> PublishStatsAsync(StatsMessage stats, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stats);
        ThrowIfDisposed();
        if (!_connected)
        {
            Interlocked.Increment(ref _statsDropped);
            return false;
        }

        var filled = stats with
        {
            Node = Node,
            Session = Session,
            Timestamp = stats.Timestamp == default ? _time.GetUtcNow() : stats.Timestamp,
            UptimeSeconds = stats.UptimeSeconds > 0 ? stats.UptimeSeconds : (_time.GetUtcNow() - _startedAt).TotalSeconds,
            Mqtt = stats.Mqtt ?? Health,
        };
        try
        {
            var msg = Message(Topics.Stats, MessageJson.Serialize(filled), MqttQualityOfServiceLevel.AtMostOnce, retain: false);
            await _client.PublishAsync(msg, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _statsDropped);
            return false;
        }
    }

    /// <summary>Waits until the outbox is empty (true) or the timeout passes (false).</summary>
    public async Task<bool> WaitForDrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + timeout;
        while (_outbox.Depth > 0)
        {
            if (_time.GetUtcNow() >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), _time, cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>Starts the background connect/send loop and returns at once (the broker may be down).</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        lock (_stateGate)
        {
            if (_loop is not null)
            {
                return Task.CompletedTask;
            }

            _stopping = false;
            _stop = new CancellationTokenSource();
            var token = _stop.Token;
            _loop = Task.Run(() => RunAsync(token), CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    /// <summary>Drains the outbox for up to DrainOnStopSeconds (while connected), publishes retained "offline"
    /// (reason "stopped") and disconnects without the will. What was not sent stays in the outbox.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task? loop;
        CancellationTokenSource? stop;
        lock (_stateGate)
        {
            loop = _loop;
            stop = _stop;
            _loop = null;
            _stop = null;
        }

        if (loop is null || stop is null)
        {
            return;
        }

        if (_connected && _o.DrainOnStopSeconds > 0)
        {
            try
            {
                await WaitForDrainAsync(TimeSpan.FromSeconds(_o.DrainOnStopSeconds), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The host's shutdown timeout wins; the rest stays queued.
            }
        }

        _stopping = true;
        await stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        stop.Dispose();
        if (_client.IsConnected)
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                cts.CancelAfter(TimeSpan.FromSeconds(Math.Min(5, _o.PublishTimeoutSeconds)));
                await _client.PublishAsync(Message(Topics.Status, MessageJson.Serialize(BuildStatus(StatusMessage.Offline, "stopped")),
                    MqttQualityOfServiceLevel.AtLeastOnce, retain: true), cts.Token).ConfigureAwait(false);
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder()
                    .WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), cts.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogStopError(_log, ex.Message);
            }
        }

        _connected = false;
        SetState(ConnectionState.Stopped, null);
    }

    /// <summary>Stops (if running) and closes the outbox.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _client.Dispose();
        _outbox.Dispose();
        _wake.Dispose();
        lock (_stateGate)
        {
            foreach (var w in _watchers)
            {
                w.Writer.TryComplete();
            }
        }
    }

    // Messages stamped with the generation of a live connection are "current"; anything else (queued while
    // offline = 0, or under an earlier connection, or by an earlier session) waited across an outage.
    private long CurrentGeneration => _connected ? Interlocked.Read(ref _generation) : 0;

    private async Task RunAsync(CancellationToken stop)
    {
        var attempt = 0;
        var lastPrune = _time.GetUtcNow();
        while (!stop.IsCancellationRequested)
        {
            if (!_client.IsConnected || !_connected)
            {
                try
                {
                    SetState(ConnectionState.Connecting, null);
                    await ConnectAsync(stop).ConfigureAwait(false);
                    attempt = 0;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception ex)
                {
                    _connected = false;
                    RecordError("connect: " + Describe(ex));
                    SetState(ConnectionState.Disconnected, _lastError);
                    var delay = Backoff(attempt++);
                    LogConnectFailed(_log, _broker, delay.TotalSeconds, Describe(ex));
                    try
                    {
                        await Task.Delay(delay, _time, stop).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }

                    continue;
                }
            }

            try
            {
                var sent = await DrainOnceAsync(stop).ConfigureAwait(false);
                if (!sent)
                {
                    await _wake.WaitAsync(TimeSpan.FromSeconds(1), stop).ConfigureAwait(false);
                }

                if (_time.GetUtcNow() - lastPrune > TimeSpan.FromMinutes(10))
                {
                    lastPrune = _time.GetUtcNow();
                    _outbox.PruneJournal(lastPrune - TimeSpan.FromDays(_o.JournalRetentionDays));
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Publish failed or timed out: the message is still in the outbox. Drop the link and reconnect;
                // what follows goes out on the new connection as historical.
                Interlocked.Increment(ref _failed);
                RecordError("publish: " + Describe(ex));
                LogPublishFailed(_log, Describe(ex));
                await ForceDisconnectAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task ConnectAsync(CancellationToken stop)
    {
        var will = MessageJson.Serialize(BuildStatus(StatusMessage.Offline, "connection_lost"));
        var options = _connectOptions.Build(will, Topics.Status);
        if (_client.IsConnected)
        {
            await ForceDisconnectAsync().ConfigureAwait(false);
        }

        var result = await _client.ConnectAsync(options, stop).ConfigureAwait(false);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new InvalidOperationException($"broker refused the connection: {result.ResultCode} {result.ReasonString}");
        }

        Interlocked.Increment(ref _generation);
        _connected = true;
        await PublishRetainedStateAsync(stop).ConfigureAwait(false);
        DateTimeOffset? downSince;
        lock (_stateGate)
        {
            downSince = _disconnectedSince;
            _connectedSince = _time.GetUtcNow();
        }

        Interlocked.Increment(ref _connects);
        var backlog = _outbox.Depth;
        var details = new JsonObject { ["broker"] = _broker, ["backlog"] = backlog };
        if (downSince is { } since)
        {
            details["outage_seconds"] = Math.Round((_time.GetUtcNow() - since).TotalSeconds, 3);
        }

        PublishEvent(EventKinds.BrokerConnected, EventSeverity.Info, $"connected to {_broker} with {backlog} queued", details: details);
        LogConnected(_log, _broker, backlog);
        SetState(ConnectionState.Connected, null);
    }

    private async Task PublishRetainedStateAsync(CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
        if (Volatile.Read(ref _model) is { } model)
        {
            await _client.PublishAsync(Message(Topics.Model, MessageJson.Serialize(model), MqttQualityOfServiceLevel.AtLeastOnce, retain: true), cts.Token)
                .ConfigureAwait(false);
        }

        await _client.PublishAsync(Message(Topics.Status, MessageJson.Serialize(BuildStatus(StatusMessage.Online, null)),
            MqttQualityOfServiceLevel.AtLeastOnce, retain: true), cts.Token).ConfigureAwait(false);
    }

    private async Task<bool> DrainOnceAsync(CancellationToken stop)
    {
        if (_ackedNotRemoved.Count > 0)
        {
            ForgetAcked([.. _ackedNotRemoved]);
        }

        var rows = _outbox.Peek(PeekBatch + _ackedNotRemoved.Count).Where(r => !_ackedNotRemoved.Contains(r.RowId)).Take(PeekBatch).ToList();
        if (rows.Count == 0)
        {
            return false;
        }

        // Acknowledged rows are deleted together at the end of the batch (one fsync instead of one per
        // message). A crash before that delete re-sends them after the restart, flagged historical: the
        // at-least-once contract consumers de-duplicate on message_id anyway.
        var acked = new List<long>(rows.Count);
        try
        {
            foreach (var row in rows)
            {
                if (stop.IsCancellationRequested || !_connected)
                {
                    return true;
                }

                if (await SendAsync(row, stop).ConfigureAwait(false))
                {
                    acked.Add(row.RowId);
                }
                else
                {
                    _outbox.Remove(row.RowId); // refused for good
                }
            }
        }
        finally
        {
            ForgetAcked(acked);
        }

        return true;
    }

    // Deletes acknowledged rows. When the disk is full even a delete cannot be written: the rows are then remembered
    // (sender loop only) and skipped, and the delete is retried at every pass. Before, the failed delete was taken for a
    // broken link: disconnect, reconnect and send the same batch again, in a loop, for as long as the disk stayed full.
    private void ForgetAcked(IReadOnlyCollection<long> acked)
    {
        try
        {
            _outbox.RemoveMany(acked);
            foreach (var rowId in acked)
            {
                _ackedNotRemoved.Remove(rowId);
            }
        }
        catch (Microsoft.Data.Sqlite.SqliteException ex)
        {
            foreach (var rowId in acked)
            {
                _ackedNotRemoved.Add(rowId);
            }

            RecordError("outbox: cannot delete delivered messages: " + ex.Message);
        }
    }

    // True when acknowledged; false when the broker refused it for good; throws when the link failed.
    private async Task<bool> SendAsync(OutboxRow row, CancellationToken stop)
    {
        var historical = row.Session != Session || row.Generation != Interlocked.Read(ref _generation);
        var payload = Stamp(row.Payload, historical);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop);
        cts.CancelAfter(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
        Interlocked.Increment(ref _published);
        MqttClientPublishResult result;
        try
        {
            result = await _client.PublishAsync(Message(row.Topic, payload, MqttQualityOfServiceLevel.AtLeastOnce, retain: false), cts.Token)
                .ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            throw new TimeoutException($"no PUBACK within {_o.PublishTimeoutSeconds} s");
        }

        if (result.ReasonCode is MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers)
        {
            Interlocked.Increment(ref _acked);
            if (historical)
            {
                Interlocked.Increment(ref _replayed);
            }

            return true;
        }

        if (result.ReasonCode is MqttClientPublishReasonCode.NotAuthorized or MqttClientPublishReasonCode.TopicNameInvalid
            or MqttClientPublishReasonCode.PayloadFormatInvalid)
        {
            // Retrying a message the broker refuses for good would block every later one: drop it, say so.
            Interlocked.Increment(ref _rejected);
            LogRejected(_log, row.Topic, result.ReasonCode);
            if (row.Kind != SqliteOutbox.KindEvent)
            {
                PublishEvent(EventKinds.BrokerRejected, EventSeverity.Error, $"broker refused a message on {row.Topic}: {result.ReasonCode}",
                    details: new JsonObject { ["topic"] = row.Topic, ["message_id"] = row.MessageId, ["reason"] = result.ReasonCode.ToString() });
            }

            return false;
        }

        throw new InvalidOperationException($"broker answered {result.ReasonCode} {result.ReasonString}");
    }

    // Sets published_at and historical at send time; everything else is the payload as committed.
    private byte[] Stamp(byte[] payload, bool historical)
    {
        try
        {
            if (JsonNode.Parse(payload) is JsonObject obj)
            {
                obj["historical"] = historical;
                obj["published_at"] = MessageJson.FormatUtc(_time.GetUtcNow());
                return JsonSerializer.SerializeToUtf8Bytes(obj, MessageJson.Options);
            }
        }
        catch (JsonException)
        {
            // Not ours to fix: send it as stored.
        }

        return payload;
    }

    private static MqttApplicationMessage Message(string topic, byte[] payload, MqttQualityOfServiceLevel qos, bool retain) =>
        new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload)
            .WithQualityOfServiceLevel(qos)
            .WithRetainFlag(retain)
            .WithContentType("application/json")
            .WithPayloadFormatIndicator(MqttPayloadFormatIndicator.CharacterData)
            .Build();

    private StatusMessage BuildStatus(string state, string? reason) => new()
    {
        State = state,
        Node = Node,
        Session = Session,
        Version = Version,
        Model = Volatile.Read(ref _model)?.ToRef(),
        Health = state == StatusMessage.Online ? Volatile.Read(ref _health) : null,
        StartedAt = _startedAt,
        Timestamp = _time.GetUtcNow(),
        Reason = reason,
    };

    private void AfterInsert(CapDrop? drop)
    {
        if (drop is not null && drop.Dropped > 0)
        {
            var pending = Interlocked.Add(ref _pendingCapDrops, drop.Dropped);
            var now = _time.GetUtcNow();
            bool emit;
            lock (_stateGate)
            {
                // One outbox_full event per minute at most: during a long outage the cap is hit at every insert.
                emit = now - _lastOutboxFullEvent >= TimeSpan.FromMinutes(1);
                if (emit)
                {
                    _lastOutboxFullEvent = now;
                }
            }

            if (emit)
            {
                Interlocked.Add(ref _pendingCapDrops, -pending);
                var s = _outbox.Stats;
                LogOutboxFull(_log, pending, s.Depth, s.Bytes);
                PublishEvent(EventKinds.OutboxFull, EventSeverity.Warning,
                    $"outbox full: dropped the {pending} oldest results to stay under {s.MaxMessages} messages / {s.MaxBytes} bytes",
                    details: new JsonObject
                    {
                        ["dropped"] = pending,
                        ["dropped_total"] = s.DroppedByCap,
                        ["depth"] = s.Depth,
                        ["bytes"] = s.Bytes,
                        ["max_messages"] = s.MaxMessages,
                        ["max_bytes"] = s.MaxBytes,
                    });
            }
        }

        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already awake.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private Task OnDisconnectedAsync(MqttClientDisconnectedEventArgs e)
    {
        if (!e.ClientWasConnected || _stopping)
        {
            return Task.CompletedTask;
        }

        _connected = false;
        var reason = e.Exception?.Message ?? e.ReasonString ?? e.Reason.ToString();
        RecordError("disconnected: " + reason);
        lock (_stateGate)
        {
            _disconnectedSince = _time.GetUtcNow();
            _connectedSince = null;
        }

        LogDisconnected(_log, reason);
        try
        {
            PublishEvent(EventKinds.BrokerDisconnected, EventSeverity.Warning, "lost the broker: " + reason,
                details: new JsonObject { ["broker"] = _broker, ["reason"] = reason });
        }
        catch (Exception ex) when (ex is ObjectDisposedException or Microsoft.Data.Sqlite.SqliteException)
        {
            // Disposed, or the outbox cannot store it (disk full): the state change below must still happen.
        }

        SetState(ConnectionState.Disconnected, reason);
        return Task.CompletedTask;
    }

    private async Task ForceDisconnectAsync()
    {
        _connected = false;
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.UnspecifiedError).Build(), cts.Token)
                .ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Already gone is fine.
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var baseSeconds = Math.Min(_o.ReconnectMaxSeconds, _o.ReconnectMinSeconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromSeconds(baseSeconds * (0.8 + (0.4 * Random.Shared.NextDouble())));
    }

    private void RecordError(string error)
    {
        lock (_stateGate)
        {
            _lastError = error;
            _lastErrorAt = _time.GetUtcNow();
        }
    }

    private void SetState(ConnectionState state, string? reason)
    {
        ConnectionStateChange change;
        lock (_stateGate)
        {
            if (_state == state)
            {
                return;
            }

            change = new ConnectionStateChange(state, _state, reason, _time.GetUtcNow());
            _state = state;
            if (state == ConnectionState.Disconnected && _disconnectedSince is null)
            {
                _disconnectedSince = change.At;
            }
            else if (state == ConnectionState.Connected)
            {
                _disconnectedSince = null;
            }

            foreach (var w in _watchers)
            {
                w.Writer.TryWrite(change);
            }
        }

        try
        {
            StateChanged?.Invoke(this, change);
        }
        catch (Exception ex)
        {
            LogHandlerFailed(_log, ex.Message);
        }
    }

    private static string Describe(Exception ex) => ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);

    [LoggerMessage(EventId = 6000, Level = LogLevel.Information, Message = "MQTT connected to {Broker}, {Backlog} message(s) queued")]
    private static partial void LogConnected(ILogger logger, string broker, long backlog);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "MQTT connection to {Broker} failed, retrying in {DelaySeconds:F1} s: {Error}")]
    private static partial void LogConnectFailed(ILogger logger, string broker, double delaySeconds, string error);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "MQTT disconnected: {Reason}; results go to the outbox until it returns")]
    private static partial void LogDisconnected(ILogger logger, string reason);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "MQTT publish failed, reconnecting: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Error, Message = "MQTT broker refused a message on {Topic} ({Reason}); dropped")]
    private static partial void LogRejected(ILogger logger, string topic, MqttClientPublishReasonCode reason);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "Outbox full: dropped {Dropped} oldest result(s); depth {Depth}, {Bytes} bytes")]
    private static partial void LogOutboxFull(ILogger logger, long dropped, long depth, long bytes);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Error, Message = "Outbox recovered: {Recovery}")]
    private static partial void LogOutboxRecovered(ILogger logger, string recovery);

    [LoggerMessage(EventId = 6007, Level = LogLevel.Warning, Message = "MQTT clean stop incomplete: {Error}")]
    private static partial void LogStopError(ILogger logger, string error);

    [LoggerMessage(EventId = 6009, Level = LogLevel.Error, Message = "Outbox cannot store a {Kind} event ({Error}); sent directly, not durably")]
    private static partial void LogEventNotStored(ILogger logger, string kind, string error);

    [LoggerMessage(EventId = 6008, Level = LogLevel.Warning, Message = "A StateChanged handler threw: {Error}")]
    private static partial void LogHandlerFailed(ILogger logger, string error);
}
