using System.Text.Json.Nodes;
using FmaEdge.Messaging;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Outbox;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Sparkplug;
using MsgEventKinds = FmaEdge.Messaging.Contract.EventKinds;

namespace FmaEdge.Daemon.Output;

/// <summary>The production <see cref="IResultSink"/>: results and events through the durable MQTT outbox and
/// published journal of <see cref="MqttPublisher"/> (docs/mqtt.md), and, when configured, the same results, model and
/// node figures in Sparkplug B (the <see cref="SparkplugPublisher"/> drains its own feed of the outbox). Thread-safe.</summary>
public sealed class MqttResultSink(MqttPublisher publisher, SparkplugPublisher? sparkplug = null) : IResultSink
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await publisher.StartAsync(cancellationToken);
        if (sparkplug is not null)
        {
            await sparkplug.StartAsync(cancellationToken);
        }
    }

    public Task WaitForFirstConnectAttemptAsync(CancellationToken cancellationToken) => publisher.WaitForFirstConnectAttemptAsync(cancellationToken);

    public ValueTask<string?> FindCommittedAsync(string sourceId, string fileKey, CancellationToken cancellationToken) =>
        ValueTask.FromResult(publisher.FindPublished(sourceId, fileKey));

    public ValueTask<CommitResult> CommitResultAsync(ImageResult r, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ToOutcome(publisher.CommitResult(ToMessage(r), r.FileKey, DuplicatePolicy.Skip)));

    /// <summary>All or nothing, in one outbox transaction: one fsync for the batch.</summary>
    public ValueTask<BatchCommit> CommitResultsAsync(IReadOnlyList<ImageResult> results, CancellationToken cancellationToken)
    {
        try
        {
            var commits = publisher.CommitResults(results.Select(r => (ToMessage(r), (string?)r.FileKey)).ToList(), DuplicatePolicy.Skip);
            return ValueTask.FromResult(new BatchCommit(commits.Select(ToOutcome).ToList(), null));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return ValueTask.FromResult(new BatchCommit([], e)); // nothing of the batch was stored
        }
    }

    // Identity (message id, session, seq) and node are the publisher's: assigned when the outbox stores the result.
    private static ResultMessage ToMessage(ImageResult r)
    {
        var m = ResultMessage.From(
            r.Prediction,
            r.SourceId,
            r.CapturedUtc,
            new ImageRef(r.ImageId, r.ImagePath, r.Sha256, r.ImageBytes, r.Width, r.Height),
            new ModelRef(r.ModelId, r.ModelVersion, r.ModelSha256, r.ExecutionProvider),
            r.Latency);
        return m with { Camera = r.Camera };
    }

    private static CommitResult ToOutcome(JournalCommit c) => c.Status == CommitStatus.Enqueued
        ? new CommitResult(CommitOutcome.Committed, c.MessageId, c.Seq)
        : new CommitResult(CommitOutcome.Duplicate, c.OriginalMessageId ?? c.MessageId);

    public async ValueTask PublishStatsAsync(FmaEdge.Daemon.Status.StatusSnapshot s, CancellationToken cancellationToken)
    {
        // Stats are a periodic snapshot (QoS 0, never stored): a missed one is replaced by the next.
        var stats = new StatsMessage
        {
            Node = s.Node,
            Session = s.Session,
            UptimeSeconds = s.UptimeSeconds,
            Health = s.Health,
            ImagesProcessed = s.Counts.Processed,
            ImagesFailed = s.Counts.Failed,
            FramesDropped = s.Counts.Dropped,
            Sources = s.Sources.ToDictionary(x => x.Id, x => new SourceStats(x.State, x.Frames, x.Errors, x.Dropped, x.Fps, x.LastFrameAgeSeconds)),
            LatencyMs = s.Latency.ToDictionary(kv => kv.Key, kv => new LatencyPercentiles(kv.Value.P50Ms, kv.Value.P99Ms)),
            Mqtt = publisher.Health,
            Sparkplug = sparkplug?.Health,
        };
        sparkplug?.SetStats(stats);
        await publisher.PublishStatsAsync(stats, cancellationToken);
    }

    public ValueTask PublishEventAsync(DaemonEvent evt, CancellationToken cancellationToken)
    {
        var details = new JsonObject();
        if (evt.Subject is not null)
        {
            details["subject"] = evt.Subject;
        }

        if (evt.Reason is not null)
        {
            details["reason"] = evt.Reason;
        }

        foreach (var (k, v) in evt.Data ?? new Dictionary<string, string>())
        {
            details[k] = v;
        }

        publisher.PublishEvent(new EventMessage
        {
            Kind = evt.Kind,
            Severity = evt.Severity,
            Source = evt.SourceId,
            Message = evt.Message,
            Details = details.Count == 0 ? null : details,
            Timestamp = evt.TimestampUtc,
        });
        return ValueTask.CompletedTask;
    }

    // Online/offline and the last will are the publisher's own job (at connect, at stop, by the broker);
    // the daemon's status only contributes the health verdict.
    public async ValueTask PublishStatusAsync(NodeStatus status, CancellationToken cancellationToken)
    {
        if (status.Online)
        {
            await publisher.SetHealthAsync(status.Health, cancellationToken);
        }
    }

    public async ValueTask PublishModelAsync(ModelMessage model, CancellationToken cancellationToken)
    {
        sparkplug?.SetModel(model);
        await publisher.SetModelAsync(model, cancellationToken);
    }

    public SinkState State
    {
        get
        {
            var h = publisher.Health;
            var detail = h.State == ConnectionState.Connected ? null : h.LastError;
            if (h.DroppedByCap > 0)
            {
                detail = $"{detail} outbox cap dropped {h.DroppedByCap} result(s)".Trim();
            }

            return new SinkState("mqtt", h.State == ConnectionState.Connected, h.Broker, h.Outbox.Depth, detail,
                sparkplug?.Health is { } spb
                    ? new SinkState("sparkplug", spb.State == "online", $"spBv1.0/{spb.EdgeNode} bdSeq {spb.BdSeq}", spb.Backlog,
                        spb.LastError is null ? spb.State : $"{spb.State}: {spb.LastError}")
                    : null);
        }
    }

    // Sparkplug first: its NDEATH goes out while the JSON publisher is still draining on its own connection.
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (sparkplug is not null)
        {
            await sparkplug.StopAsync(cancellationToken);
        }

        await publisher.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (sparkplug is not null)
        {
            await sparkplug.DisposeAsync();
        }

        await publisher.DisposeAsync();
    }
}
