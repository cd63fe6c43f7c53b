using System.Globalization;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Status;
using FmaEdge.Messaging.Contract;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Hosting;

/// <summary>The daemon's lifecycle as one hosted service. Start: output, model (loaded and warmed), pipeline, sources,
/// status socket, then the models-folder watch; start returns only then, so systemd's READY (sent by the systemd
/// lifetime once every hosted service started) means "warm and open". While running, a heartbeat loop sends WATCHDOG=1
/// only while no pipeline stage is wedged, refreshes STATUS= and checks disk space. Stop (SIGTERM): sources stop, the
/// pipeline drains (in-flight images finish and are committed), the output flushes, then everything closes.
/// Called by the host only (not thread-safe itself).</summary>
public sealed class FmaEdgeDaemon(
    FmaEdgeOptions options,
    DaemonSession session,
    IResultSink sink,
    ModelManager models,
    InferencePipeline pipeline,
    SourceSet sources,
    StatusService status,
    StatusServer statusServer,
    ISystemdNotifier notifier,
    WatchdogSettings watchdogSettings,
    TimeProvider time,
    ILogger<FmaEdgeDaemon> log) : IHostedService, IAsyncDisposable
{
    private CancellationTokenSource? _heartbeatCts;
    private Task? _heartbeat;
    private bool _diskLowReported;
    private string? _publishedHealth;
    private int _disposed;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Log.Starting(log, StatusService.Version, options.EffectiveNodeName, session.Id);
        try
        {
            Directory.CreateDirectory(options.Paths.ResolvedStateDir);
            Notify("STATUS=starting output");
            await sink.StartAsync(cancellationToken);
            Notify("STATUS=loading and warming the model");
            await models.LoadInitialAsync(cancellationToken);
            pipeline.Start();
            // The publisher has been connecting while the model loaded; a result stored before its first connection
            // would go out flagged historical (docs/mqtt.md), so sources open once that attempt has ended.
            Notify("STATUS=connecting the output");
            await sink.WaitForFirstConnectAttemptAsync(cancellationToken);
            Notify("STATUS=opening sources");
            foreach (var s in sources.All)
            {
                await s.StartAsync(pipeline, cancellationToken);
            }

            await statusServer.StartAsync(cancellationToken);
            models.StartWatching();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.StartFailed(log, e.Message);
            throw;
        }

        status.Ready = true;
        var m = models.Current!.Classifier;
        Log.Ready(log, m.Model.Manifest.Model.Id, m.Model.ShortHash, m.ExecutionProvider, sources.All.Count);
        await PublishStatusAsync(online: true, cancellationToken);
        await Events.EmitAsync(sink, log, new DaemonEvent(EventKinds.Started, EventSeverity.Info,
            $"fma-edge {StatusService.Version} started, serving {m.Model.Manifest.Model.Id} {m.Model.ShortHash} on {m.ExecutionProvider}",
            time.GetUtcNow()), cancellationToken);
        // READY=1 here, not only from the systemd lifetime: this is the moment the model is warm and sources are open,
        // and it also reaches a NOTIFY_SOCKET when the parent is not detected as systemd. A second READY is harmless.
        Notify("READY=1");
        _heartbeatCts = new CancellationTokenSource();
        _heartbeat = Task.Run(() => HeartbeatAsync(_heartbeatCts.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Log.Draining(log, pipeline.InFlight);
        Notify("STOPPING=1");
        Notify($"STATUS=draining {pipeline.InFlight} image(s)");
        status.Ready = false;
        foreach (var s in sources.All)
        {
            await s.StopAsync(cancellationToken);
        }

        if (!await pipeline.DrainAsync(cancellationToken))
        {
            Log.DrainTimeout(log, pipeline.InFlight);
        }

        if (_heartbeatCts is not null)
        {
            await _heartbeatCts.CancelAsync();
            await (_heartbeat ?? Task.CompletedTask).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        await Events.EmitAsync(sink, log, new DaemonEvent(EventKinds.Stopping, EventSeverity.Info,
            $"stopping cleanly after {pipeline.Published} result(s) this session", time.GetUtcNow()), CancellationToken.None);
        await PublishStatusAsync(online: false, CancellationToken.None);
        await sink.StopAsync(cancellationToken);
        await statusServer.DisposeAsync();
        Log.Stopped(log, pipeline.Published, pipeline.Failed);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered both as itself and as the hosted service, so the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _heartbeatCts?.Dispose();
        foreach (var s in sources.All)
        {
            await s.DisposeAsync();
        }

        await models.DisposeAsync();
        await sink.DisposeAsync();
    }

    private async Task PublishStatusAsync(bool online, CancellationToken ct)
    {
        var m = models.Current?.Classifier.Model;
        try
        {
            await sink.PublishStatusAsync(new NodeStatus(options.EffectiveNodeName, online, StatusService.Version, session.Id,
                time.GetUtcNow(), m?.Manifest.Model.Id, m?.Sha256, online ? status.Snapshot().Health : "offline"), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.SinkError(log, "status", e.Message);
        }
    }

    /// <summary>The pipeline's own heartbeat drives the systemd watchdog: a wedged stage stops the pings, so systemd
    /// restarts a daemon that is alive but no longer working.</summary>
    private async Task HeartbeatAsync(CancellationToken ct)
    {
        var watchdog = watchdogSettings.Interval;
        var tick = watchdog is { } w ? TimeSpan.FromTicks(Math.Min(w.Ticks / 3, TimeSpan.FromSeconds(options.Status.IntervalSeconds).Ticks)) : TimeSpan.FromSeconds(options.Status.IntervalSeconds);
        var lastStatus = DateTime.MinValue;
        var lastStats = DateTime.UtcNow;
        while (!ct.IsCancellationRequested)
        {
            var wedged = pipeline.Heartbeats.FirstOrDefault(h => h.BusyFor.TotalSeconds > options.Pipeline.StallSeconds);
            if (pipeline.Faulted)
            {
                Log.Wedged(log, "pipeline (faulted)", 0);
            }
            else if (wedged is null)
            {
                if (watchdog is not null)
                {
                    Notify("WATCHDOG=1");
                }
            }
            else
            {
                Log.Wedged(log, wedged.Name, wedged.BusyFor.TotalSeconds);
            }

            if (DateTime.UtcNow - lastStatus >= TimeSpan.FromSeconds(options.Status.IntervalSeconds))
            {
                lastStatus = DateTime.UtcNow;
                var snap = status.Snapshot();
                Notify(string.Create(CultureInfo.InvariantCulture,
                    $"STATUS={snap.Health}: {snap.Counts.Processed} ok, {snap.Counts.Failed} failed, {snap.Counts.InFlight} in flight; model {snap.Model?.Id} on {snap.Model?.Provider}"));
                await CheckDiskAsync(ct);
                if (snap.Health != _publishedHealth)
                {
                    // The retained MQTT status carries the verdict: without this it kept the verdict of the start
                    // (often "degraded" while the broker was still unreachable) for the whole run, and a full disk or a
                    // dead source never showed on the floor's status topic.
                    _publishedHealth = snap.Health;
                    await PublishStatusAsync(online: true, ct);
                }

                if (DateTime.UtcNow - lastStats >= TimeSpan.FromSeconds(options.Status.StatsSeconds))
                {
                    lastStats = DateTime.UtcNow;
                    try
                    {
                        await sink.PublishStatsAsync(snap, ct);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        Log.SinkError(log, "stats", e.Message);
                    }
                }
            }

            await Task.Delay(tick, time, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task CheckDiskAsync(CancellationToken ct)
    {
        var low = status.Disks().FirstOrDefault(d => d.BelowFloor);
        if (low is not null && !_diskLowReported)
        {
            _diskLowReported = true;
            Log.DiskLow(log, low.Path, low.FreeMiB, options.Health.DiskFloorMiB);
            await Events.EmitAsync(sink, log, new DaemonEvent(EventKinds.DiskLow, EventSeverity.Warning,
                $"{low.FreeMiB} MiB free on {low.Path}, below the {options.Health.DiskFloorMiB} MiB floor", time.GetUtcNow(), Subject: low.Path), ct);
        }
        else if (low is null)
        {
            _diskLowReported = false;
        }
    }

    private void Notify(string state)
    {
        if (notifier.IsEnabled)
        {
            notifier.Notify(new ServiceState(state));
        }
    }
}

/// <summary>How often systemd expects WATCHDOG=1 (its WatchdogSec), or null when nobody watches. Immutable.</summary>
public sealed class WatchdogSettings
{
    public TimeSpan? Interval { get; init; }

    /// <summary>From $WATCHDOG_USEC / $WATCHDOG_PID as systemd sets them for the watched process.</summary>
    public static WatchdogSettings FromEnvironment()
    {
        var usec = Environment.GetEnvironmentVariable("WATCHDOG_USEC");
        var pid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if (!long.TryParse(usec, CultureInfo.InvariantCulture, out var us) || us <= 0)
        {
            return new WatchdogSettings();
        }

        var ours = pid is null || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        return new WatchdogSettings { Interval = ours ? TimeSpan.FromMicroseconds(us) : null };
    }
}
