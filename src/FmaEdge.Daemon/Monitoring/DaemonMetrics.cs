using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;
using FmaEdge.Daemon.Status;
using FmaEdge.Messaging.Contract;
using Prometheus;

namespace FmaEdge.Daemon.Monitoring;

/// <summary>The daemon's Prometheus metrics (docs/operations.md lists every family). Events (per-image outcomes,
/// latencies, batch sizes) are observed as they happen; everything else is read from the same
/// <see cref="StatusSnapshot"/> as <c>fma-edge status</c> just before each scrape, so the two never disagree.
/// Thread-safe: prometheus-net metrics are, and the refresh is serialised.</summary>
public sealed class DaemonMetrics
{
    private const string Prefix = "fmaedge_";
    private static readonly string[] ConnectionStates = Enum.GetNames<ConnectionState>().Select(n => n.ToLowerInvariant()).ToArray();
    private static readonly string[] HealthStates = ["healthy", "degraded", "starting"];

    private readonly StatusService _status;
    private readonly Func<PublisherHealth>? _publisher;
    private readonly MqttMetrics? _mqtt;
    private readonly long _diskFloorBytes;
    private readonly Lock _refreshGate = new();
    private string[]? _modelLabels;

    private readonly Counter _images;
    private readonly Counter _failures;
    private readonly Histogram _stageLatency;
    private readonly Histogram _inferenceBatch;
    private readonly Histogram _commitBatch;
    private readonly Gauge _queueDepth;
    private readonly Gauge _queueCapacity;
    private readonly Gauge _inFlight;
    private readonly Gauge _health;
    private readonly Gauge _problems;
    private readonly Gauge _outputConnected;
    private readonly Gauge _outboxDepth;
    private readonly Gauge _modelInfo;
    private readonly Counter _modelSwaps;
    private readonly Counter _modelRejected;
    private readonly Gauge _modelLoading;
    private readonly Gauge _sourceUp;
    private readonly Counter _sourceFrames;
    private readonly Counter _sourceDropped;
    private readonly Counter _cameraIncomplete;
    private readonly Counter _cameraResends;
    private readonly Counter _cameraTriggers;
    private readonly Counter _cameraDelivered;
    private readonly Counter _sourceErrors;
    private readonly Gauge _sourcePending;
    private readonly Gauge _sourceFrameAge;
    private readonly Gauge _diskFree;
    private readonly Gauge _diskFloor;
    private readonly Gauge _diskBelowFloor;
    private readonly Gauge _managedHeap;
    private readonly Gauge _sqliteMemory;
    private readonly Gauge _rss;

    /// <summary>Creates every metric in a registry of its own (plus prometheus-net's process metrics) and subscribes to
    /// the pipeline's events. <paramref name="publisher"/> gives the MQTT publisher's health; null for other outputs, which
    /// then have no MQTT and outbox-detail metrics (rather than zeros that look like a quiet broker).</summary>
    public DaemonMetrics(FmaEdgeOptions options, StatusService status, InferencePipeline pipeline, Func<PublisherHealth>? publisher)
    {
        _status = status;
        _publisher = publisher;
        _diskFloorBytes = options.Health.DiskFloorMiB * 1024 * 1024;
        Registry = Metrics.NewCustomRegistry();
        DotNetStats.Register(Registry);
        var f = Metrics.WithCustomRegistry(Registry);

        _images = f.CreateCounter(Prefix + "images_total", "Images finished, by source and outcome (published, failed, duplicate, skipped, abandoned).", "source", "outcome");
        _failures = f.CreateCounter(Prefix + "image_failures_total", "Images set aside, by reason code (the code in the bad-image event and the reason file).", "reason");
        _stageLatency = f.CreateHistogram(Prefix + "stage_latency_seconds", "Per-image latency of each stage: decode, preprocess, infer (the image's batch), total (arrival to stored result).",
            new HistogramConfiguration
            {
                LabelNames = ["stage"],
                Buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
            });
        _inferenceBatch = f.CreateHistogram(Prefix + "inference_batch_size", "Images per inference run.",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        _commitBatch = f.CreateHistogram(Prefix + "commit_batch_size", "Results stored per group commit (one durable write each).",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64] });
        _queueDepth = f.CreateGauge(Prefix + "queue_depth", "Items waiting in each pipeline queue (input, infer, publish).", "queue");
        _queueCapacity = f.CreateGauge(Prefix + "queue_capacity", "Capacity of each pipeline queue.", "queue");
        _inFlight = f.CreateGauge(Prefix + "images_in_flight", "Images accepted and not yet finished.");
        _health = f.CreateGauge(Prefix + "health", "1 for the node's current health verdict (healthy, degraded, starting), 0 for the others.", "state");
        _problems = f.CreateGauge(Prefix + "problems", "Problems listed by fma-edge status (0 when healthy).");
        _outputConnected = f.CreateGauge(Prefix + "output_connected", "1 while results are being delivered (broker connected, folder writable).");
        _outboxDepth = f.CreateGauge(Prefix + "outbox_depth", "Committed messages not yet acknowledged by the broker.");
        _mqtt = publisher is null ? null : new MqttMetrics(f);
        _modelInfo = f.CreateGauge(Prefix + "model_info", "The serving model: always 1, the facts are in the labels.", "id", "version", "sha256", "provider");
        _modelSwaps = f.CreateCounter(Prefix + "model_swaps_total", "Hot swaps to a new model.");
        _modelRejected = f.CreateCounter(Prefix + "model_rejected_total", "Model files refused (failed validation or warm-up).");
        _modelLoading = f.CreateGauge(Prefix + "model_loading", "1 while a new model is being loaded and warmed up.");
        _sourceUp = f.CreateGauge(Prefix + "source_up", "1 while the source is watching or streaming.", "source", "type");
        _sourceFrames = f.CreateCounter(Prefix + "source_frames_total", "Images or frames the source passed on.", "source", "type");
        _sourceDropped = f.CreateCounter(Prefix + "source_dropped_total", "Camera frames dropped on overload (oldest first); always 0 for folders.", "source", "type");
        _cameraIncomplete = f.CreateCounter(Prefix + "camera_incomplete_frames_total", "GenICam frames the camera started but did not complete (missing packets); never classified.", "source");
        _cameraResends = f.CreateCounter(Prefix + "camera_resends_total", "GigE Vision packets the host asked the camera to send again.", "source");
        _cameraTriggers = f.CreateCounter(Prefix + "camera_triggers_total", "Software triggers received for the camera (status socket, MQTT).", "source");
        _cameraDelivered = f.CreateCounter(Prefix + "camera_frames_delivered_total", "Frames the camera backend delivered to the source.", "source");
        _sourceErrors = f.CreateCounter(Prefix + "source_errors_total", "Read errors of the source (failed grabs or reads, reconnects).", "source", "type");
        _sourcePending = f.CreateGauge(Prefix + "source_pending", "Files seen and not yet passed on (folders).", "source", "type");
        _sourceFrameAge = f.CreateGauge(Prefix + "source_last_frame_age_seconds", "Seconds since the source last passed on an image (absent before the first).", "source", "type");
        _diskFree = f.CreateGauge(Prefix + "disk_free_bytes", "Free bytes on each folder the daemon writes to.", "path");
        _diskFloor = f.CreateGauge(Prefix + "disk_floor_bytes", "Free space below which the node is degraded (Health:DiskFloorMiB).");
        _diskBelowFloor = f.CreateGauge(Prefix + "disk_below_floor", "1 when the folder's free space is below the floor.", "path");
        _managedHeap = f.CreateGauge(Prefix + "managed_heap_bytes", "Bytes of the .NET GC heap.");
        _sqliteMemory = f.CreateGauge(Prefix + "sqlite_memory_bytes", "Bytes held by SQLite's allocator (outbox and journal).");
        _rss = f.CreateGauge(Prefix + "resident_memory_bytes", "Resident set size of the process (VmRSS).");

        var build = f.CreateGauge(Prefix + "build_info", "The daemon: always 1, the facts are in the labels.", "version", "node");
        build.WithLabels(StatusService.Version, options.EffectiveNodeName).Set(1);

        pipeline.Finished += (work, outcome) => _images.WithLabels(work.SourceId, outcome.Status.ToString().ToLowerInvariant()).Inc();
        Observe(pipeline.DecodeLatency, "decode");
        Observe(pipeline.PreprocessLatency, "preprocess");
        Observe(pipeline.InferLatency, "infer");
        Observe(pipeline.TotalLatency, "total");
        pipeline.InferenceBatched += n => _inferenceBatch.Observe(n);
        pipeline.CommitBatched += n => _commitBatch.Observe(n);
        Registry.AddBeforeCollectCallback(Refresh);
    }

    /// <summary>The registry the endpoint serves.</summary>
    public CollectorRegistry Registry { get; }

    private void Observe(LatencyRecorder recorder, string stage)
    {
        var child = _stageLatency.WithLabels(stage);
        recorder.Recorded += ms => child.Observe(ms / 1000.0);
    }

    /// <summary>Copies the current status into the gauges and counters; runs before every scrape.</summary>
    private void Refresh()
    {
        var s = _status.Snapshot();
        var publisher = _publisher?.Invoke();
        lock (_refreshGate)
        {
            foreach (var (reason, n) in s.Counts.FailedByReason)
            {
                _failures.WithLabels(reason).IncTo(n);
            }

            SetQueue("input", s.Queues.Input, s.Queues.InputCapacity);
            SetQueue("infer", s.Queues.Infer, s.Queues.InferCapacity);
            SetQueue("publish", s.Queues.Publish, s.Queues.PublishCapacity);
            _inFlight.Set(s.Counts.InFlight);
            foreach (var state in HealthStates)
            {
                _health.WithLabels(state).Set(state == s.Health ? 1 : 0);
            }

            _problems.Set(s.Problems.Count);
            _outputConnected.Set(s.Output.Connected ? 1 : 0);
            _outboxDepth.Set(s.Output.OutboxDepth);
            if (publisher is not null && _mqtt is not null)
            {
                _mqtt.Refresh(publisher);
                _outboxDepth.Set(publisher.Outbox.Depth);
            }

            RefreshModel(s.Model);
            foreach (var src in s.Sources)
            {
                string[] labels = [src.Id, src.Type];
                _sourceUp.WithLabels(labels).Set(SourceStates.IsUp(src.State) ? 1 : 0);
                _sourceFrames.WithLabels(labels).IncTo(src.Frames);
                _sourceDropped.WithLabels(labels).IncTo(src.Dropped);
                _sourceErrors.WithLabels(labels).IncTo(src.Errors);
                _sourcePending.WithLabels(labels).Set(src.Pending);
                if (src.Camera is { } cam)
                {
                    _cameraIncomplete.WithLabels(src.Id).IncTo(cam.IncompleteFrames);
                    _cameraResends.WithLabels(src.Id).IncTo(cam.Resends);
                    _cameraTriggers.WithLabels(src.Id).IncTo(cam.TriggersReceived);
                    _cameraDelivered.WithLabels(src.Id).IncTo(cam.FramesDelivered);
                }

                if (src.LastFrameAgeSeconds is { } age)
                {
                    _sourceFrameAge.WithLabels(labels).Set(age);
                }
            }

            _diskFloor.Set(_diskFloorBytes);
            foreach (var d in s.Disks.Where(d => d.FreeMiB >= 0))
            {
                _diskFree.WithLabels(d.Path).Set(d.FreeMiB * 1024.0 * 1024.0);
                _diskBelowFloor.WithLabels(d.Path).Set(d.BelowFloor ? 1 : 0);
            }

            if (s.Process is { } p)
            {
                _managedHeap.Set(p.ManagedHeapMiB * 1024 * 1024);
                _sqliteMemory.Set(p.SqliteMiB * 1024 * 1024);
                if (p.RssMiB >= 0)
                {
                    _rss.Set(p.RssMiB * 1024 * 1024);
                }
            }
        }
    }

    private void SetQueue(string queue, int depth, int capacity)
    {
        _queueDepth.WithLabels(queue).Set(depth);
        _queueCapacity.WithLabels(queue).Set(capacity);
    }

    private void RefreshModel(ModelStatus? m)
    {
        string[]? labels = m is null ? null : [m.Id, m.Version, m.Sha256, m.Provider];
        if (_modelLabels is not null && (labels is null || !_modelLabels.SequenceEqual(labels)))
        {
            _modelInfo.RemoveLabelled(_modelLabels); // one series: the model serving now
        }

        if (labels is not null)
        {
            _modelInfo.WithLabels(labels).Set(1);
        }

        _modelLabels = labels;
        if (m is not null)
        {
            _modelSwaps.IncTo(m.Swaps);
            _modelRejected.IncTo(m.Rejected);
            _modelLoading.Set(m.Loading is null ? 0 : 1);
        }
    }

    /// <summary>The MQTT publisher's connection and outbox details; only with the MQTT output.</summary>
    private sealed class MqttMetrics(MetricFactory f)
    {
        private readonly Gauge _state = f.CreateGauge(Prefix + "mqtt_connection_state", "1 for the publisher's current connection state, 0 for the others.", "state");
        private readonly Counter _connects = f.CreateCounter(Prefix + "mqtt_connects_total", "Successful connections to the broker.");
        private readonly Counter _acked = f.CreateCounter(Prefix + "mqtt_acked_total", "Messages the broker acknowledged (removed from the outbox).");
        private readonly Counter _failed = f.CreateCounter(Prefix + "mqtt_publish_failures_total", "Publish attempts that failed; the message stayed queued.");
        private readonly Counter _replayed = f.CreateCounter(Prefix + "mqtt_replayed_total", "Acknowledged messages that had waited across an outage or restart.");
        private readonly Gauge _outboxBytes = f.CreateGauge(Prefix + "outbox_bytes", "Payload bytes of the messages in the outbox.");
        private readonly Gauge _outboxOldestAge = f.CreateGauge(Prefix + "outbox_oldest_age_seconds", "Age of the oldest unsent message (0 when the outbox is empty).");
        private readonly Counter _outboxDropped = f.CreateCounter(Prefix + "outbox_dropped_total", "Results dropped because the outbox reached its cap.");

        public void Refresh(PublisherHealth h)
        {
            var current = h.State.ToString().ToLowerInvariant();
            foreach (var state in ConnectionStates)
            {
                _state.WithLabels(state).Set(state == current ? 1 : 0);
            }

            _connects.IncTo(h.Connects);
            _acked.IncTo(h.Acked);
            _failed.IncTo(h.Failed);
            _replayed.IncTo(h.Replayed);
            _outboxBytes.Set(h.Outbox.Bytes);
            _outboxOldestAge.Set(h.Outbox.OldestAgeSeconds ?? 0);
            _outboxDropped.IncTo(h.Outbox.DroppedByCap);
        }
    }
}
