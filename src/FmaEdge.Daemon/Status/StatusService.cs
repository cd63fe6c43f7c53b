using System.Reflection;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;

namespace FmaEdge.Daemon.Status;

/// <summary>Builds truthful <see cref="StatusSnapshot"/>s from the live parts and decides the health verdict.
/// Thread-safe: every part it reads is.</summary>
public sealed class StatusService(FmaEdgeOptions options, DaemonSession session, ModelManager models, InferencePipeline pipeline,
    SourceSet sources, IResultSink sink, TimeProvider time)
{
    /// <summary>The daemon's version (assembly informational version).</summary>
    public static string Version { get; } =
        typeof(StatusService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>True once start-up finished (model warm, sources open).</summary>
    public bool Ready { get; set; }

    /// <summary>Takes a snapshot now.</summary>
    public StatusSnapshot Snapshot()
    {
        var problems = new List<string>();
        var slot = models.Current;
        ModelStatus? model = null;
        if (slot is not null)
        {
            var m = slot.Classifier.Model;
            var rej = models.LastRejection;
            model = new ModelStatus(m.Manifest.Model.Id, m.Manifest.Model.Version, m.Sha256, m.Path, slot.Classifier.ExecutionProvider,
                slot.Classifier.ProviderNotes, slot.ActiveSinceUtc, models.Swaps, models.Loading,
                rej is null ? null : new ModelRejectionStatus(rej.Path, rej.Reasons, rej.AtUtc) { SetAsideTo = rej.SetAsideTo })
            {
                Rejected = models.Rejected,
                ProviderAttempts = slot.Classifier.ProviderAttempts,
            };
            if (rej is not null && rej.AtUtc > slot.ActiveSinceUtc)
            {
                problems.Add($"model file {Path.GetFileName(rej.Path)} refused: {(rej.Reasons.Count > 0 ? rej.Reasons[0] : "")}");
            }
        }
        else
        {
            problems.Add("no model loaded");
        }

        var sourceStates = sources.All.Select(s => s.GetState()).ToList();
        foreach (var s in sourceStates.Where(s => !SourceStates.IsUp(s.State)))
        {
            problems.Add($"source {s.Id} is {s.State}{(s.Detail is null ? "" : ": " + s.Detail)}");
        }

        // A source that works but cannot finish its files (done/ full: results stored, files not moved) says so in its
        // detail; that must not pass as healthy.
        foreach (var s in sourceStates.Where(s => SourceStates.IsUp(s.State) && s.Detail is not null))
        {
            problems.Add($"source {s.Id}: {s.Detail}");
        }

        // An abandoned capture still blocked holds a thread (and often the device) until it returns; say so even while a
        // fresh capture streams.
        foreach (var s in sourceStates.Where(s => s.StuckCaptures > 0))
        {
            problems.Add($"source {s.Id}: {s.StuckCaptures} abandoned capture(s) still blocked in native code");
        }

        var outState = sink.State;
        if (!outState.Connected)
        {
            problems.Add($"output {outState.Kind} not delivering ({outState.Detail ?? "disconnected"}); outbox holds {outState.OutboxDepth}");
        }

        // Allowed only by an explicit setting, and never silently: anyone on the network may read and publish.
        if (options.Output.Type == OutputType.Mqtt && options.Mqtt.Embedded is { Enabled: true, IsLoopback: false, AnonymousAllowed: true } b)
        {
            problems.Add($"embedded MQTT broker on {b.BindAddress}:{b.Port} accepts anonymous clients from the network (Mqtt.Embedded.AllowAnonymous)");
        }

        var disks = Disks();
        problems.AddRange(disks.Where(d => d.BelowFloor).Select(d => $"disk low: {d.FreeMiB} MiB free on {d.Path}"));
        foreach (var hb in pipeline.Heartbeats)
        {
            if (hb.BusyFor.TotalSeconds > options.Pipeline.StallSeconds)
            {
                problems.Add($"pipeline stage {hb.Name} busy for {hb.BusyFor.TotalSeconds:F0} s (wedged)");
            }
        }

        if (pipeline.Faulted)
        {
            problems.Add("pipeline stopped working (a stage ended unexpectedly); see the journal");
        }

        if (pipeline.LastAbandon is { } ab && time.GetUtcNow() - ab.AtUtc < TimeSpan.FromMinutes(1))
        {
            problems.Add($"images handed back for a retry: {ab.Reason}");
        }

        var (qi, qn, qp) = pipeline.QueueDepths;
        var (ci, cn, cp) = pipeline.QueueCapacities;
        var now = time.GetUtcNow();
        return new StatusSnapshot
        {
            Health = !Ready ? "starting" : problems.Count == 0 ? "healthy" : "degraded",
            Problems = problems,
            Node = options.EffectiveNodeName,
            Version = Version,
            Session = session.Id,
            ProcessId = Environment.ProcessId,
            StartedUtc = session.StartedUtc,
            UptimeSeconds = Math.Round((now - session.StartedUtc).TotalSeconds, 1),
            Model = model,
            Sources = sourceStates,
            Queues = new QueueStatus(qi, ci, qn, cn, qp, cp),
            Counts = new CountStatus(pipeline.Published, pipeline.Failed, pipeline.Duplicates, pipeline.Skipped,
                sourceStates.Sum(s => s.Dropped), pipeline.InFlight, Math.Round(pipeline.MeanBatch, 2))
            {
                FailedByReason = pipeline.FailedByReason,
            },
            Latency = new Dictionary<string, LatencySummary>
            {
                ["decode"] = pipeline.DecodeLatency.Summarise(),
                ["preprocess"] = pipeline.PreprocessLatency.Summarise(),
                ["infer"] = pipeline.InferLatency.Summarise(),
                ["total"] = pipeline.TotalLatency.Summarise(),
            },
            Output = outState,
            Disks = disks,
            Process = ProcessStatus.Measure(),
        };
    }

    /// <summary>Free space on the state folder and every folder source.</summary>
    public IReadOnlyList<DiskStatus> Disks()
    {
        var floor = options.Health.DiskFloorMiB;
        var paths = new List<string> { options.Paths.ResolvedStateDir };
        foreach (var s in options.Sources.Where(s => s.Type == "folder" && s.Enabled))
        {
            paths.Add(Path.GetFullPath(s.Path));
            // done/ and failed/ may sit on another file system; a full one there stops files from being finished.
            if (s.After == FolderAfter.Move)
            {
                paths.AddRange(new[] { s.DoneDir, s.FailedDir }.Where(d => !string.IsNullOrWhiteSpace(d) && Directory.Exists(d)).Select(Path.GetFullPath));
            }
        }
        var result = new List<DiskStatus>();
        foreach (var p in paths.Distinct(StringComparer.Ordinal))
        {
            try
            {
                var d = new DriveInfo(p);
                var free = d.AvailableFreeSpace / (1024 * 1024);
                result.Add(new DiskStatus(p, free, d.TotalSize / (1024 * 1024), free < floor));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                result.Add(new DiskStatus(p, -1, -1, false));
            }
        }

        return result;
    }
}

/// <summary>The configured image sources, started and stopped together. Thread-safe after construction.</summary>
public sealed class SourceSet(IReadOnlyList<IImageSource> sources)
{
    public IReadOnlyList<IImageSource> All { get; } = sources;

    /// <summary>Triggers a source by id; false when unknown or it does not take triggers.</summary>
    public bool Trigger(string id) => All.FirstOrDefault(s => s.Id == id)?.Trigger() ?? false;
}
