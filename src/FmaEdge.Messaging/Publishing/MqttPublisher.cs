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
    // Completed when the first connection attempt of this process has ended, connected or not.
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
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
        _outbox = new SqliteOutbox(_o.OutboxPath, Session, _o.OutboxMaxMessages, _o.OutboxMaxBytes, _time,
            _o.Sparkplug.Enabled ? [Sparkplug.SparkplugPublisher.FeedName] : null);
        if (_outbox.Recovery is { } recovery)
        {
            LogOutboxRecovered(_log, recovery);
            PublishEvent(EventKinds.OutboxRecovered, EventSeverity.Error, recovery, details: new JsonObject { ["path"] = _outbox.Path });
        }

        _outbox.PruneJournal(_startedAt - TimeSpan.FromDays(_o.JournalRetentionDays));
        _client = new MqttClientFactory().CreateMqttClient();
        _client.DisconnectedAsync += OnDisconnectedAsync;
        _client.ApplicationMessageReceivedAsync += OnMessageReceivedAsync;
    }

    /// <summary>This run's id (in every payload); a new one at every daemon start.</summary>
    public string Session { get; }

    /// <summary>Node name in topics and payloads.</summary>
    public string Node { get; }

    /// <summary>Daemon version reported in status.</summary>
    public string Version { get; }

    /// <summary>The topic tree.</summary>
    public Topics Topics { get; }

    /// <summary>The outbox, for a second consumer of committed results (Sparkplug B).</summary>
    internal SqliteOutbox Outbox => _outbox;

    /// <summary>Broker, login and TLS, for a second connection (Sparkplug B).</summary>
    internal MqttConnectOptionsFactory ConnectOptions => _connectOptions;

    /// <summary>Raised after results were committed (on the committing thread; handlers must be quick).</summary>
    internal event Action? ResultsCommitted;

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
        ResultsCommitted?.Invoke();
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
            // Retained, so a fleet view shows the latest figures the moment it subscribes.
            var msg = Message(Topics.Stats, MessageJson.Serialize(filled), MqttQualityOfServiceLevel.AtMostOnce, retain: true);
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

    /// <summary>Waits until the first connection attempt after <see cref="StartAsync"/> has ended, and returns whether
    /// it connected. Bounded by the attempt's own deadlines (ConnectTimeoutSeconds + PublishTimeoutSeconds for the
    /// retained state): a broker that is down or unreachable answers false, it never waits longer. The daemon opens its
    /// sources after this, so a full inbox at start is published live (historical: false) when the broker is up.</summary>
    public async Task<bool> WaitForFirstConnectAttemptAsync(CancellationToken cancellationToken)
    {
        var deadline = TimeSpan.FromSeconds(_o.ConnectTimeoutSeconds + _o.PublishTimeoutSeconds + 1);
        try
        {
            await _firstAttempt.Task.WaitAsync(deadline, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The attempt outlived its own deadlines (a hung socket): go on; what is stored meanwhile goes out later.
        }

        return _connected;
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
        _firstAttempt.TrySetResult(); // nobody waits for an attempt that will not come
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

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
}
