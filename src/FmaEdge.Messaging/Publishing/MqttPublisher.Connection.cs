using System.Text.Json.Nodes;
using FmaEdge.Messaging.Contract;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Publishing;

/// <summary>The connection supervisor: connect, reconnect with backoff, the retained state at each connect, state changes.</summary>
public sealed partial class MqttPublisher
{
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
                    _firstAttempt.TrySetResult();
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    _firstAttempt.TrySetResult();
                    break;
                }
                catch (Exception ex)
                {
                    _connected = false;
                    RecordError("connect: " + Describe(ex));
                    SetState(ConnectionState.Disconnected, _lastError);
                    _firstAttempt.TrySetResult();
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
        await SubscribeTriggersAsync(stop).ConfigureAwait(false);
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

    private TimeSpan Backoff(int attempt) => ConnectionRetry.Delay(_o, attempt);

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
}
