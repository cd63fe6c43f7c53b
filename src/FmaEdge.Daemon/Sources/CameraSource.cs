using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources.Cameras;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace FmaEdge.Daemon.Sources;

/// <summary>A live camera through OpenCV's VideoCapture (V4L2 index or path, RTSP, a file, a GStreamer pipeline where
/// OpenCV has it). Frames are sampled (continuous up to an fps limit, every interval, or on trigger) into a small bounded
/// queue that drops the oldest frame under overload (counted). No frame for <c>StallSeconds</c> counts as a stall and the
/// capture is reopened; failures reconnect with exponential backoff. Each capture runs on its own thread, so a read that
/// never returns cannot wedge the source. Thread-safe for state, trigger and stop.</summary>
public sealed class CameraSource : IImageSource, IWorkCompletion
{
    private readonly SourceOptions _options;
    private readonly ILogger _log;
    private readonly IResultSink _sink;
    private readonly Channel<ImageWork> _queue;
    private readonly RateMeter _rate = new();
    private CancellationTokenSource? _cts;
    private Task? _supervisor;
    private Task? _pump;
    private long _frames;
    private long _errors;
    private long _dropped;
    private long _reportedDropped;
    private long _lastDropReport;
    private long _sequence;
    private long _lastFrameTimestamp;
    private long _generation;
    private int _triggers;
    private string _state = "stopped";
    private string? _detail;
    private DateTime _triggerFileStamp;
    private IFrameGrabber? _grabber;

    public CameraSource(SourceOptions options, IResultSink sink, ILogger log)
    {
        _options = options;
        _sink = sink;
        _log = log;
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

    public string Id => _options.Id;

    public Task StartAsync(IImageSink input, CancellationToken cancellationToken)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _state = "connecting";
        _supervisor = Task.Run(() => SuperviseAsync(_cts.Token), CancellationToken.None);
        _pump = Task.Run(() => PumpAsync(input, _cts.Token), CancellationToken.None);
        if (_options.TriggerFile.Length > 0 && File.Exists(_options.TriggerFile))
        {
            _triggerFileStamp = File.GetLastWriteTimeUtc(_options.TriggerFile);
        }

        Log.SourceStarted(_log, Id, "camera", _options.Uri);
        return Task.CompletedTask;
    }

    private readonly List<Thread> _threads = [];

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_cts is null)
        {
            return;
        }

        await _cts.CancelAsync();
        foreach (var t in new[] { _supervisor, _pump })
        {
            if (t is not null)
            {
                await t.WaitAsync(cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        // Capture threads stop at their next read; wait for them so no native VideoCapture call outlives the
        // source (a read racing process or test-host shutdown has crashed the process).
        Thread[] threads;
        lock (_threads)
        {
            threads = [.. _threads];
            _threads.Clear();
        }

        await Task.Run(() =>
        {
            foreach (var t in threads)
            {
                t.Join(TimeSpan.FromSeconds(5));
            }
        }, CancellationToken.None);

        while (_queue.Reader.TryRead(out var w))
        {
            w.Frame?.Dispose();
        }

        _state = "stopped";
    }

    public bool Trigger()
    {
        if (_options.Sampling != "trigger")
        {
            return false;
        }

        Interlocked.Increment(ref _triggers);
        return true;
    }

    public SourceState GetState()
    {
        var last = Interlocked.Read(ref _lastFrameTimestamp);
        double? age = last == 0 ? null : Stopwatch.GetElapsedTime(last).TotalSeconds;
        return new SourceState(Id, "camera", _state, Interlocked.Read(ref _frames), _rate.PerSecond, age,
            Interlocked.Read(ref _errors), Interlocked.Read(ref _dropped), _queue.Reader.Count, _detail);
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
        while (!ct.IsCancellationRequested)
        {
            var generation = Interlocked.Increment(ref _generation);
            var opened = new TaskCompletionSource<(int W, int H)?>(TaskCreationOptions.RunContinuationsAsynchronously);
            var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() => CaptureLoop(generation, opened, ended, ct)) { IsBackground = true, Name = $"camera-{Id}" };
            lock (_threads)
            {
                _threads.RemoveAll(t => !t.IsAlive);
                _threads.Add(thread);
            }

            thread.Start();
            var size = await opened.Task.WaitAsync(ct).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default);
            string reason;
            if (size is { } s)
            {
                _state = "streaming";
                _detail = null;
                delay = _options.ReconnectMinMs;
                Log.CameraUp(_log, Id, _options.Uri, s.W, s.H);
                if (!wasUp)
                {
                    wasUp = true;
                    await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceUp, "info", $"camera {Id} streaming {s.W}x{s.H}", DateTimeOffset.UtcNow, Id, _options.Uri), ct);
                }

                reason = await WatchAsync(ended.Task, ct);
            }
            else
            {
                reason = ended.Task.IsCompleted ? ended.Task.Result : "could not open";
            }

            // Abandon the old capture thread: it stops at its next read and disposes its own capture; backends that
            // can interrupt a blocked read (ffmpeg) are told to now.
            Interlocked.Increment(ref _generation);
            Volatile.Read(ref _grabber)?.Abort(ct.IsCancellationRequested ? "stopping" : reason);
            if (ct.IsCancellationRequested)
            {
                break;
            }

            Interlocked.Increment(ref _errors);
            _state = "reconnecting";
            _detail = reason;
            Log.CameraDown(_log, Id, reason, delay);
            if (wasUp)
            {
                wasUp = false;
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceDown, "warning", $"camera {Id} down: {reason}", DateTimeOffset.UtcNow, Id, _options.Uri, reason), ct);
            }

            await Task.Delay(delay, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            delay = Math.Min(delay * 2, _options.ReconnectMaxMs);
        }
    }

    /// <summary>Waits until the capture ends or stalls; returns why.</summary>
    private async Task<string> WatchAsync(Task<string> ended, CancellationToken ct)
    {
        var stall = TimeSpan.FromSeconds(_options.StallSeconds);
        while (!ct.IsCancellationRequested)
        {
            var done = await Task.WhenAny(ended, Task.Delay(TimeSpan.FromMilliseconds(250), ct));
            if (done == ended)
            {
                return ended.Result;
            }

            ReportDrops();
            var last = Interlocked.Read(ref _lastFrameTimestamp);
            var age = Stopwatch.GetElapsedTime(last);
            if (last != 0 && age > stall)
            {
                Log.CameraStalled(_log, Id, age.TotalSeconds);
                return $"stalled: no frame for {age.TotalSeconds:F0} s";
            }
        }

        return "stopping";
    }

    /// <summary>Logs and publishes drops at most every 10 s, so an overloaded line does not flood the journal.</summary>
    private void ReportDrops()
    {
        if (_lastDropReport != 0 && Stopwatch.GetElapsedTime(_lastDropReport) < TimeSpan.FromSeconds(10))
        {
            return;
        }

        var total = Interlocked.Read(ref _dropped);
        var before = Interlocked.Exchange(ref _reportedDropped, total);
        if (total > before)
        {
            _lastDropReport = Stopwatch.GetTimestamp();
            Log.FramesDropped(_log, Id, total - before, total);
            _ = Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.FrameDrops, "warning",
                $"camera {Id} dropped {total - before} frame(s) under overload (oldest first); {total} in total", DateTimeOffset.UtcNow, Id, _options.Uri, "overload")
            {
                Data = new Dictionary<string, string> { ["dropped"] = (total - before).ToString(CultureInfo.InvariantCulture), ["total"] = total.ToString(CultureInfo.InvariantCulture) },
            }, CancellationToken.None).AsTask();
        }
    }

    private void CaptureLoop(long generation, TaskCompletionSource<(int, int)?> opened, TaskCompletionSource<string> ended, CancellationToken ct)
    {
        IFrameGrabber? grabber = null;
        try
        {
            grabber = CameraBackends.Create(_options);
            Interlocked.Exchange(ref _grabber, grabber);
            grabber.Open(ct);
            Interlocked.Exchange(ref _lastFrameTimestamp, Stopwatch.GetTimestamp());
            opened.TrySetResult((grabber.Info.Width, grabber.Info.Height));
            var minGap = _options.Sampling switch
            {
                "interval" => TimeSpan.FromMilliseconds(_options.IntervalMs),
                "continuous" when _options.FpsLimit > 0 => TimeSpan.FromSeconds(1 / _options.FpsLimit),
                _ => TimeSpan.Zero,
            };
            var lastSent = 0L;
            using var frame = new Mat();
            while (!ct.IsCancellationRequested && Interlocked.Read(ref _generation) == generation)
            {
                if (grabber.Read(frame, ct) is not { } meta || frame.Empty())
                {
                    ended.TrySetResult("end of stream or read failure");
                    return;
                }

                Interlocked.Exchange(ref _lastFrameTimestamp, Stopwatch.GetTimestamp());
                bool take;
                if (_options.Sampling == "trigger")
                {
                    take = TakeTrigger();
                }
                else
                {
                    take = lastSent == 0 || Stopwatch.GetElapsedTime(lastSent) >= minGap;
                }

                if (!take)
                {
                    continue;
                }

                lastSent = Stopwatch.GetTimestamp();
                var seq = Interlocked.Increment(ref _sequence);
                var work = new ImageWork
                {
                    SourceId = Id,
                    Sequence = seq,
                    ImageId = $"{Id}-{seq:D8}",
                    Frame = frame.Clone(),
                    FrameKey = $"{Id}-{DateTimeOffset.UtcNow:yyyyMMddTHHmmssfff}-{seq.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}",
                    CapturedUtc = meta.CapturedUtc,
                    ArrivalTimestamp = Stopwatch.GetTimestamp(),
                    Completion = this,
                };
                _queue.Writer.TryWrite(work); // drop-oldest: never blocks the capture
                Interlocked.Increment(ref _frames);
                _rate.Mark();
            }

            ended.TrySetResult("stopping");
        }
        catch (Exception e)
        {
            opened.TrySetResult(null);
            ended.TrySetResult(e.Message);
        }
        finally
        {
            Interlocked.CompareExchange(ref _grabber, null, grabber);
            grabber?.Dispose();
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
