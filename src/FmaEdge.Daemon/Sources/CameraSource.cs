using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Sources.Cameras;
using FmaEdge.Messaging.Contract;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace FmaEdge.Daemon.Sources;

/// <summary>A live camera through OpenCV's VideoCapture (V4L2 index or path, RTSP, a file, a GStreamer pipeline where
/// OpenCV has it). Frames are sampled (continuous up to an fps limit, every interval, or on trigger) into a small bounded
/// queue that drops the oldest frame under overload (counted). No frame for <c>StallSeconds</c> counts as a stall and the
/// capture is reopened; failures reconnect with exponential backoff. Each capture attempt runs on its own thread and each
/// native call in it has a deadline (<c>OpenTimeoutSeconds</c> for the open, <c>StallSeconds</c> for a read): an attempt
/// blocked past it inside OpenCV or the kernel is abandoned (counted, logged, published) and its thread left to return
/// on its own, so nothing in the daemon ever waits on it. Thread-safe for state, trigger and stop.</summary>
public sealed partial class CameraSource : IImageSource, IWorkCompletion
{
    /// <summary>How long a stop waits for healthy capture threads to return from their current read.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

    private readonly SourceOptions _options;
    private readonly ILogger _log;
    private readonly IReporter _sink;
    private readonly TimeProvider _time;
    private readonly Channel<ImageWork> _queue;
    private readonly RateMeter _rate = new();
    private readonly List<CaptureAttempt> _attempts = [];
    private CancellationTokenSource? _cts;
    private Task? _supervisor;
    private Task? _pump;
    private bool _stopped;
    private long _frames;
    private long _errors;
    private long _dropped;
    private long _abandoned;
    private long _reportedDropped;
    private long _lastDropReport;
    private long _sequence;
    private long _lastFrameTimestamp;
    private int _triggers;
    private string _state = SourceStates.Stopped;
    private string? _detail;
    private DateTime _triggerFileStamp;
    private long _triggersReceived;
    private CameraInfo? _cameraInfo;
    private GrabberCounters? _counters;
    private IReadOnlyList<string> _featureProblems = [];

    public CameraSource(SourceOptions options, IReporter sink, ILogger log, TimeProvider? time = null)
    {
        _options = options;
        _sink = sink;
        _log = log;
        _time = time ?? TimeProvider.System;
        _queue = Channel.CreateBounded<ImageWork>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        }, dropped =>
        {
            Interlocked.Increment(ref _dropped);
            dropped.Frame?.Dispose();
        });
    }

    /// <summary>Checks a camera source's settings (<paramref name="key"/>: its configuration path; <paramref name="watched"/>:
    /// folders other sources watch).</summary>
    public static void Validate(SourceOptions s, string key, ConfigErrors errors, ISet<string> watched)
    {
        // A GenICam camera may be left unnamed: the first one found is taken.
        if (string.IsNullOrWhiteSpace(s.Uri) && s.Backend != CameraBackends.Aravis)
        {
            errors.Add($"{key}:Uri is required for a camera source");
        }

        ValidateGenICam(s.GenICam, $"{key}:GenICam", errors);

        if (!Cameras.CameraBackends.All.Contains(s.Backend))
        {
            errors.Add($"{key}:Backend '{s.Backend}' is not {string.Join(", ", Cameras.CameraBackends.All)}");
        }

        if (!(s.FpsLimit >= 0 && s.FpsLimit <= 1000))
        {
            errors.Add($"{key}:FpsLimit {s.FpsLimit} is outside 0..1000");
        }

        errors.Range($"{key}:IntervalMs", s.IntervalMs, 10, 86_400_000);
        errors.Range($"{key}:StallSeconds", s.StallSeconds, 1, 3600);
        errors.Range($"{key}:OpenTimeoutSeconds", s.OpenTimeoutSeconds, 1, 3600);
        errors.Range($"{key}:MaxStuckCaptures", s.MaxStuckCaptures, 1, 64);
        errors.Range($"{key}:ReconnectMinMs", s.ReconnectMinMs, 10, 600_000);
        errors.Range($"{key}:ReconnectMaxMs", s.ReconnectMaxMs, s.ReconnectMinMs, 3_600_000);
        errors.Range($"{key}:QueueCapacity", s.QueueCapacity, 1, 1000);
    }

    private static void ValidateGenICam(GenICamOptions g, string key, ConfigErrors errors)
    {
        if (g.Trigger is not (GenICamOptions.FreeRunning or GenICamOptions.Software or GenICamOptions.Hardware))
        {
            errors.Add($"{key}:Trigger '{g.Trigger}' is not free, software or hardware");
        }

        if (g.Region.Length > 0 && !RegionPattern().IsMatch(g.Region))
        {
            errors.Add($"{key}:Region '{g.Region}' is not x,y,width,height");
        }

        for (var i = 0; i < g.Features.Count; i++)
        {
            if (g.Features[i].IndexOf('=', StringComparison.Ordinal) <= 0)
            {
                errors.Add($"{key}:Features:{i} '{g.Features[i]}' is not Name=Value");
            }
        }

        if (g.PacketSize is { } p)
        {
            errors.Range($"{key}:PacketSize", p, 576, 16_384);
        }

        if (g.Trigger == GenICamOptions.Hardware && string.IsNullOrWhiteSpace(g.TriggerSource))
        {
            errors.Add($"{key}:TriggerSource is required for a hardware trigger");
        }
    }

    [GeneratedRegex(@"^\s*\d+\s*,\s*\d+\s*,\s*[1-9]\d*\s*,\s*[1-9]\d*\s*$")]
    private static partial Regex RegionPattern();

    public string Id => _options.Id;

    public Task StartAsync(IImageSink input, CancellationToken cancellationToken)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _state = SourceStates.Connecting;
        _supervisor = Task.Run(() => SuperviseAsync(_cts.Token), CancellationToken.None);
        _pump = Task.Run(() => PumpAsync(input, _cts.Token), CancellationToken.None);
        if (_options.TriggerFile.Length > 0 && File.Exists(_options.TriggerFile))
        {
            _triggerFileStamp = File.GetLastWriteTimeUtc(_options.TriggerFile);
        }

        Log.SourceStarted(_log, Id, "camera", _options.Uri);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_cts is null || _stopped)
        {
            return;
        }

        _stopped = true;
        await _cts.CancelAsync();
        foreach (var t in new[] { _supervisor, _pump })
        {
            if (t is not null)
            {
                await t.WaitAsync(cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        // A healthy capture returns at its next frame: wait for it briefly, so no native VideoCapture call outlives the
        // source needlessly. Never wait on one blocked in native code: the process may exit with it (a background thread).
        var live = LiveAttempts();
        foreach (var a in live)
        {
            a.Retire("stopping");
        }

        await Task.WhenAll(live.Where(a => !a.Abandoned).Select(a => a.Finished.Task)).WaitAsync(StopGrace, _time, cancellationToken)
            .ContinueWith(_ => { }, TaskScheduler.Default);
        foreach (var a in live.Where(a => !a.Finished.Task.IsCompleted))
        {
            await AbandonAsync(a, a.Stage == CaptureStage.Opening ? "open" : "read");
        }

        while (_queue.Reader.TryRead(out var w))
        {
            w.Frame?.Dispose();
        }

        _state = SourceStates.Stopped;
    }

    public bool Trigger()
    {
        // A GenICam camera triggered by software takes the trigger itself (one frame per trigger), and only while it is
        // acquiring; other cameras in trigger sampling take the latest frame.
        if (CameraBackends.Resolve(_options) == CameraBackends.Aravis && _options.GenICam.Trigger == GenICamOptions.Software)
        {
            if (CurrentGrabber()?.SoftwareTrigger() != true)
            {
                return false;
            }

            Interlocked.Increment(ref _triggersReceived);
            return true;
        }

        if (_options.Sampling != CameraSampling.Trigger)
        {
            return false;
        }

        Interlocked.Increment(ref _triggersReceived);
        Interlocked.Increment(ref _triggers);
        return true;
    }

    public SourceState GetState()
    {
        var last = Interlocked.Read(ref _lastFrameTimestamp);
        double? age = last == 0 ? null : _time.GetElapsedTime(last).TotalSeconds;
        var info = _cameraInfo;
        var counters = _counters;
        return new SourceState(Id, "camera", _state, Interlocked.Read(ref _frames), _rate.PerSecond, age,
            Interlocked.Read(ref _errors), Interlocked.Read(ref _dropped), _queue.Reader.Count, _detail)
        {
            AbandonedCaptures = Interlocked.Read(ref _abandoned),
            StuckCaptures = StuckAttempts().Count,
            Camera = new CameraStatus(info?.Backend ?? CameraBackends.Resolve(_options), info?.Address ?? _options.Uri, info?.Model, info?.Serial,
                info?.PixelFormat, info?.Width ?? 0, info?.Height ?? 0, counters?.Incomplete ?? 0, counters?.Resends ?? 0,
                Interlocked.Read(ref _triggersReceived), Interlocked.Read(ref _frames), _featureProblems),
        };
    }

    public ValueTask CompleteAsync(ImageWork work, WorkOutcome outcome, CancellationToken cancellationToken)
    {
        if (outcome.Status == WorkStatus.Failed)
        {
            Interlocked.Increment(ref _errors);
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _cts?.Dispose();
        _cts = null;
    }

    /// <summary>Opens captures, watches frame age and reconnects with exponential backoff.</summary>
    private async Task SuperviseAsync(CancellationToken ct)
    {
        var delay = _options.ReconnectMinMs;
        var wasUp = false;
        var number = 0L;
        while (!ct.IsCancellationRequested)
        {
            await WaitWhileTooManyStuckAsync(ct);
            if (ct.IsCancellationRequested)
            {
                break;
            }

            var attempt = StartAttempt(++number, ct);
            var openDeadline = TimeSpan.FromSeconds(_options.OpenTimeoutSeconds);
            await Task.WhenAny(attempt.Opened.Task, Task.Delay(openDeadline, _time, ct));
            if (ct.IsCancellationRequested)
            {
                break;
            }

            string reason;
            if (!attempt.Opened.Task.IsCompleted)
            {
                reason = $"open did not return within {_options.OpenTimeoutSeconds} s";
                await AbandonAsync(attempt, "open");
            }
            else if (attempt.Opened.Task.Result is { } s)
            {
                _state = SourceStates.Streaming;
                _detail = null;
                delay = _options.ReconnectMinMs;
                Log.CameraUp(_log, Id, _options.Uri, s.Width, s.Height);
                foreach (var problem in _featureProblems)
                {
                    Log.CameraFeatureProblem(_log, Id, problem);
                }

                if (!wasUp)
                {
                    wasUp = true;
                    await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceUp, EventSeverity.Info, $"camera {Id} streaming {s.Width}x{s.Height}", _time.GetUtcNow(), Id, _options.Uri), ct);
                }

                reason = await WatchAsync(attempt, ct);
            }
            else
            {
                reason = await attempt.Ended.Task;
            }

            // It stops at its next read and disposes its own capture; a backend that can interrupt a blocked read (ffmpeg)
            // is told to now.
            attempt.Retire(ct.IsCancellationRequested ? "stopping" : reason);
            if (ct.IsCancellationRequested)
            {
                break;
            }

            Interlocked.Increment(ref _errors);
            _state = SourceStates.Reconnecting;
            _detail = reason;
            Log.CameraDown(_log, Id, reason, delay);
            if (wasUp)
            {
                wasUp = false;
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceDown, EventSeverity.Warning, $"camera {Id} down: {reason}", _time.GetUtcNow(), Id, _options.Uri, reason), ct);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(delay), _time, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            delay = Math.Min(delay * 2, _options.ReconnectMaxMs);
        }
    }

    private CaptureAttempt StartAttempt(long number, CancellationToken ct)
    {
        var attempt = new CaptureAttempt(number, _time);
        var thread = new Thread(() => CaptureLoop(attempt, ct)) { IsBackground = true, Name = $"camera-{Id}-{number}" };
        lock (_attempts)
        {
            _attempts.RemoveAll(a => a.Finished.Task.IsCompleted);
            _attempts.Add(attempt);
        }

        thread.Start();
        return attempt;
    }

    /// <summary>The grabber of the newest attempt still running (null while none is open).</summary>
    private IFrameGrabber? CurrentGrabber() => LiveAttempts().LastOrDefault(a => !a.Retired)?.Grabber;

    private List<CaptureAttempt> LiveAttempts()
    {
        lock (_attempts)
        {
            return _attempts.Where(a => !a.Finished.Task.IsCompleted).ToList();
        }
    }

    private List<CaptureAttempt> StuckAttempts()
    {
        lock (_attempts)
        {
            return _attempts.Where(a => a.Stuck).ToList();
        }
    }

    /// <summary>Each abandoned attempt holds a thread (and often a device or, inside OpenCV's FFmpeg, a process-wide
    /// lock), so at most <c>MaxStuckCaptures</c> are left behind; then the source waits for one to return.</summary>
    private async Task WaitWhileTooManyStuckAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var stuck = StuckAttempts();
            if (stuck.Count < _options.MaxStuckCaptures)
            {
                return;
            }

            _state = SourceStates.Reconnecting;
            _detail = $"{stuck.Count} capture attempt(s) stuck in native code; waiting for one to return before trying again";
            await Task.WhenAny(stuck.Select(a => a.Finished.Task).Append(Task.Delay(Timeout.InfiniteTimeSpan, ct)));
        }
    }

    /// <summary>Gives up on an attempt blocked in <paramref name="stage"/>: counted, logged, published; its thread is left
    /// to return on its own and hands over nothing more.</summary>
    private async Task AbandonAsync(CaptureAttempt attempt, string stage)
    {
        if (!attempt.Abandon())
        {
            return;
        }

        var total = Interlocked.Increment(ref _abandoned);
        var seconds = attempt.InStageFor.TotalSeconds;
        var stuck = StuckAttempts().Count;
        Log.CaptureAbandoned(_log, Id, stage, seconds, stuck);
        await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.CaptureAbandoned, EventSeverity.Warning,
            string.Create(CultureInfo.InvariantCulture, $"camera {Id}: capture {stage} blocked for {seconds:F0} s; attempt abandoned, its thread left behind ({stuck} stuck)"),
            _time.GetUtcNow(), Id, _options.Uri, stage)
        {
            Data = new Dictionary<string, string>
            {
                ["stage"] = stage,
                ["blocked_seconds"] = seconds.ToString("F1", CultureInfo.InvariantCulture),
                ["abandoned"] = total.ToString(CultureInfo.InvariantCulture),
                ["stuck"] = stuck.ToString(CultureInfo.InvariantCulture),
            },
        }, CancellationToken.None);
    }

    /// <summary>Waits until the capture ends or stalls; returns why. A stalled capture still inside its read is abandoned.</summary>
    private async Task<string> WatchAsync(CaptureAttempt attempt, CancellationToken ct)
    {
        var stall = TimeSpan.FromSeconds(_options.StallSeconds);
        while (!ct.IsCancellationRequested)
        {
            var done = await Task.WhenAny(attempt.Ended.Task, Task.Delay(TimeSpan.FromMilliseconds(250), _time, ct));
            if (done == attempt.Ended.Task)
            {
                return attempt.Ended.Task.Result;
            }

            ReportDrops();
            var age = _time.GetElapsedTime(Interlocked.Read(ref _lastFrameTimestamp));
            // A camera that only sends frames when triggered is allowed silence; its backend checks the camera answers.
            if (age > stall && !(attempt.Grabber?.WaitsForTriggers ?? false))
            {
                Log.CameraStalled(_log, Id, age.TotalSeconds);
                if (attempt.Stage == CaptureStage.Reading)
                {
                    await AbandonAsync(attempt, "read");
                }

                return $"stalled: no frame for {age.TotalSeconds:F0} s";
            }
        }

        return "stopping";
    }

    /// <summary>Logs and publishes drops at most every 10 s, so an overloaded line does not flood the journal.</summary>
    private void ReportDrops()
    {
        if (_lastDropReport != 0 && _time.GetElapsedTime(_lastDropReport) < TimeSpan.FromSeconds(10))
        {
            return;
        }

        var total = Interlocked.Read(ref _dropped);
        var before = Interlocked.Exchange(ref _reportedDropped, total);
        if (total > before)
        {
            _lastDropReport = _time.GetTimestamp();
            Log.FramesDropped(_log, Id, total - before, total);
            _ = Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.FrameDrops, EventSeverity.Warning,
                $"camera {Id} dropped {total - before} frame(s) under overload (oldest first); {total} in total", _time.GetUtcNow(), Id, _options.Uri, "overload")
            {
                Data = new Dictionary<string, string> { ["dropped"] = (total - before).ToString(CultureInfo.InvariantCulture), ["total"] = total.ToString(CultureInfo.InvariantCulture) },
            }, CancellationToken.None).AsTask();
        }
    }

    private void CaptureLoop(CaptureAttempt attempt, CancellationToken ct)
    {
        IFrameGrabber? grabber = null;
        try
        {
            grabber = CameraBackends.Create(_options);
            attempt.Grabber = grabber;
            grabber.Open(ct);
            attempt.Enter(CaptureStage.Working);
            if (attempt.Retired)
            {
                attempt.Opened.TrySetResult(null);
                attempt.Ended.TrySetResult("abandoned");
                return;
            }

            _cameraInfo = grabber.Info;
            _counters = grabber.Counters;
            _featureProblems = grabber.Problems;
            Interlocked.Exchange(ref _lastFrameTimestamp, _time.GetTimestamp());
            attempt.Opened.TrySetResult((grabber.Info.Width, grabber.Info.Height));
            var minGap = _options.Sampling switch
            {
                CameraSampling.Interval => TimeSpan.FromMilliseconds(_options.IntervalMs),
                CameraSampling.Continuous when _options.FpsLimit > 0 => TimeSpan.FromSeconds(1 / _options.FpsLimit),
                _ => TimeSpan.Zero,
            };
            var lastSent = 0L;
            using var frame = new Mat();
            while (!ct.IsCancellationRequested && !attempt.Retired)
            {
                attempt.Enter(CaptureStage.Reading);
                var meta = grabber.Read(frame, ct);
                attempt.Enter(CaptureStage.Working);
                if (attempt.Retired)
                {
                    break; // abandoned or replaced while it read: what it read belongs to nobody
                }

                if (meta is null || frame.Empty())
                {
                    attempt.Ended.TrySetResult("end of stream or read failure");
                    return;
                }

                Interlocked.Exchange(ref _lastFrameTimestamp, _time.GetTimestamp());
                bool take;
                if (grabber.WaitsForTriggers)
                {
                    take = true; // the camera sent it because it was triggered
                }
                else if (_options.Sampling == CameraSampling.Trigger)
                {
                    take = TakeTrigger();
                }
                else
                {
                    take = lastSent == 0 || _time.GetElapsedTime(lastSent) >= minGap;
                }

                if (!take)
                {
                    continue;
                }

                lastSent = _time.GetTimestamp();
                var seq = Interlocked.Increment(ref _sequence);
                var work = new ImageWork
                {
                    SourceId = Id,
                    Sequence = seq,
                    ImageId = $"{Id}-{seq:D8}",
                    Frame = frame.Clone(),
                    FrameKey = $"{Id}-{_time.GetUtcNow():yyyyMMddTHHmmssfff}-{seq.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}",
                    CapturedUtc = meta.Value.CapturedUtc,
                    Camera = meta.Value.CameraFrameId is { } frameId ? new FmaEdge.Messaging.Contract.CameraRef(frameId, meta.Value.CameraTimestampNs) : null,
                    ArrivalTimestamp = Stopwatch.GetTimestamp(),
                    Completion = this,
                };
                _queue.Writer.TryWrite(work); // drop-oldest: never blocks the capture
                Interlocked.Increment(ref _frames);
                _rate.Mark();
            }

            attempt.Ended.TrySetResult("stopping");
        }
        catch (Exception e)
        {
            attempt.Opened.TrySetResult(null);
            attempt.Ended.TrySetResult(e.Message);
        }
        finally
        {
            grabber?.Dispose();
            attempt.Enter(CaptureStage.Ended);
            attempt.Finished.TrySetResult();
            if (attempt.Abandoned)
            {
                Log.AbandonedCaptureReturned(_log, Id, attempt.SinceAbandoned.TotalSeconds, StuckAttempts().Count);
            }
        }
    }

    private bool TakeTrigger()
    {
        if (_options.TriggerFile.Length > 0 && File.Exists(_options.TriggerFile))
        {
            var stamp = File.GetLastWriteTimeUtc(_options.TriggerFile);
            if (stamp != _triggerFileStamp)
            {
                _triggerFileStamp = stamp;
                return true;
            }
        }

        return Interlocked.Exchange(ref _triggers, 0) > 0;
    }

    /// <summary>Moves frames from the drop-oldest queue into the pipeline (which may make this wait; the queue absorbs it).</summary>
    private async Task PumpAsync(IImageSink input, CancellationToken ct)
    {
        try
        {
            await foreach (var work in _queue.Reader.ReadAllAsync(ct))
            {
                await input.WriteAsync(work, ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ChannelClosedException)
        {
        }
    }
}
