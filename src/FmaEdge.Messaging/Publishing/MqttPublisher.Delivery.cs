using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Publishing;

/// <summary>Delivery: draining the outbox in order, stamping each payload (historical, published_at), acks, the outbox cap.</summary>
public sealed partial class MqttPublisher
{
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
}
