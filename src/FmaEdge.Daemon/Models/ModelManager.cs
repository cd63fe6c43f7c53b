using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Files;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Messaging.Contract;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Models;

/// <summary>The serving model and its hot-swap by file drop. A new or replaced <c>.onnx</c> in the models folder is
/// taken once its size and time stamp have been stable (a rename-in is stable at once), validated against the contract,
/// loaded and warmed up beside the serving model, and only then offered as <see cref="TryTakePending"/>; the pipeline
/// swaps between batches, so no image meets a half-loaded model. Anything that fails leaves the serving model in place
/// and is reported (event, log, <see cref="LastRejection"/>). Thread-safe: one background loop loads; readers see
/// immutable <see cref="ModelSlot"/> snapshots.</summary>
public sealed class ModelManager : IAsyncDisposable
{
    private readonly FmaEdgeOptions _options;
    private readonly IClassifierLoader _loader;
    private readonly IReporter _sink;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly string _dir;
    private readonly Lock _gate = new();
    private readonly StableFileTracker _tracker;
    private readonly Dictionary<string, string> _settled = new(StringComparer.Ordinal); // path -> signature already judged
    private ModelSlot? _current;
    private ModelSlot? _pending;
    private TaskCompletionSource _pendingSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _generation;
    private long _swaps;
    private long _rejected;
    private FileSystemWatcher? _watcher;
    private CancellationTokenSource? _cts;
    private Task? _loop;
    private int _disposed;

    public ModelManager(FmaEdgeOptions options, IClassifierLoader loader, IReporter sink, ILogger<ModelManager> log, TimeProvider? time = null)
    {
        _options = options;
        _loader = loader;
        _sink = sink;
        _log = log;
        _time = time ?? TimeProvider.System;
        _dir = options.Paths.ResolvedModelsDir;
        _tracker = new StableFileTracker(TimeSpan.FromMilliseconds(options.Models.StableMs), seenMeansComplete: false, _time);
    }

    /// <summary>The serving model, or null before <see cref="LoadInitialAsync"/>.</summary>
    public ModelSlot? Current => Volatile.Read(ref _current);

    /// <summary>The last model file refused, and why; null when none was.</summary>
    public ModelRejection? LastRejection { get; private set; }

    /// <summary>Model files refused since start (at start-up or as hot-swap drops).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Where refused hot-swap drops are moved, each with a <c>.reason.txt</c>.</summary>
    public string RejectedDir => Path.Combine(_dir, "rejected");

    /// <summary>The file being loaded and warmed right now, or null.</summary>
    public string? Loading { get; private set; }

    /// <summary>Completed models swapped in since start.</summary>
    public long Swaps => Interlocked.Read(ref _swaps);

    /// <summary>Completes when a warmed model waits to be swapped in (so an idle pipeline swaps promptly).</summary>
    public Task PendingSignal
    {
        get
        {
            lock (_gate)
            {
                return _pendingSignal.Task;
            }
        }
    }

    /// <summary>The folder watched for model files.</summary>
    public string ModelsDir => _dir;

    /// <summary>Loads the configured model, else the newest valid file in the models folder. Throws
    /// <see cref="InvalidOperationException"/> listing why each candidate was refused when none can serve.</summary>
    public async Task LoadInitialAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_dir);
        var files = new List<string>();
        if (!string.IsNullOrWhiteSpace(_options.Models.Active))
        {
            files.Add(Path.IsPathRooted(_options.Models.Active) ? _options.Models.Active : Path.Combine(_dir, _options.Models.Active));
        }
        else
        {
            files.AddRange(new DirectoryInfo(_dir).EnumerateFiles("*.onnx").OrderByDescending(f => f.LastWriteTimeUtc).Select(f => f.FullName));
        }

        foreach (var f in new DirectoryInfo(_dir).EnumerateFiles("*.onnx"))
        {
            _settled[f.FullName] = StableFileTracker.SignatureOf(f.FullName) ?? "";
        }

        var refusals = new List<string>();
        foreach (var file in files)
        {
            // On a normal-priority thread: ONNX Runtime's workers take the priority of the thread that makes the session.
            var slot = await InferenceThreads.RunAsync("load", () => TryLoad(file, cancellationToken));
            if (slot is not null)
            {
                Volatile.Write(ref _current, slot);
                Log.ModelActive(_log, slot.Classifier.Model.Manifest.Model.Id, slot.Classifier.Model.ShortHash, slot.Classifier.ExecutionProvider, file);
                await PublishModelAsync(slot, cancellationToken);
                return;
            }

            refusals.Add($"{Path.GetFileName(file)}: {string.Join("; ", LastRejection?.Reasons ?? [])}");
        }

        throw new InvalidOperationException(files.Count == 0
            ? $"no model to serve: {_dir} holds no .onnx file and FmaEdge:Models:Active is not set"
            : $"no model could be served:\n  - {string.Join("\n  - ", refusals)}");
    }

    /// <summary>Begins watching the models folder (when enabled).</summary>
    public void StartWatching()
    {
        if (!_options.Models.Watch)
        {
            return;
        }

        // A rename out of the pattern (m.onnx -> m.onnx.bak) still raises an event for the new name: judge only *.onnx.
        _watcher = _tracker.Watch(_dir, "*.onnx", (path, renamedIn) =>
        {
            if (string.Equals(Path.GetExtension(path), ".onnx", StringComparison.OrdinalIgnoreCase))
            {
                _tracker.Seen(path, renamedIn);
            }
        }, e => Log.ModelWatchError(_log, e.Message));
        _cts = new CancellationTokenSource();
        _loop = Task.Run(() => WatchLoopAsync(_cts.Token));
    }

    /// <summary>Called by the inference stage between batches: returns the warmed model to serve from now on, or null.
    /// The caller disposes <paramref name="retired"/> after its last use.</summary>
    public ModelSlot? TryTakePending(out ModelSlot? retired)
    {
        retired = null;
        ModelSlot? next;
        lock (_gate)
        {
            next = _pending;
            if (next is null)
            {
                return null;
            }

            _pending = null;
            _pendingSignal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            retired = _current;
            Volatile.Write(ref _current, next);
        }

        Interlocked.Increment(ref _swaps);
        var m = next.Classifier.Model;
        var previous = retired?.Classifier.Model;
        Log.ModelSwapped(_log, m.Manifest.Model.Id, m.ShortHash, previous?.ShortHash ?? "-");
        _ = Task.Run(async () =>
        {
            await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.ModelSwapped, EventSeverity.Info,
                $"now serving {m.Manifest.Model.Id} {m.ShortHash} on {next.Classifier.ExecutionProvider}", _time.GetUtcNow(), Subject: m.Path)
            {
                Data = new Dictionary<string, string> { ["sha256"] = m.Sha256, ["previous_sha256"] = previous?.Sha256 ?? "" },
            }, CancellationToken.None);
            await PublishModelAsync(next, CancellationToken.None);
        });
        return next;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (_watcher is not null)
        {
            _watcher.EnableRaisingEvents = false;
            _watcher.Dispose();
        }

        if (_cts is not null)
        {
            await _cts.CancelAsync();
            if (_loop is not null)
            {
                await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            _cts.Dispose();
        }

        _tracker.Dispose();

        lock (_gate)
        {
            _pending?.Classifier.Dispose();
            _pending = null;
        }

        Current?.Classifier.Dispose();
    }

    private async Task WatchLoopAsync(CancellationToken ct)
    {
        var nextScan = _time.GetTimestamp();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _tracker.WaitAsync(TimeSpan.FromMilliseconds(Math.Clamp(_options.Models.StableMs / 4, 50, 500)), ct);
                if (_time.GetElapsedTime(nextScan) >= TimeSpan.Zero)
                {
                    // Safety net for missed watcher events: anything whose signature changed since it was judged.
                    foreach (var f in Directory.EnumerateFiles(_dir, "*.onnx"))
                    {
                        var sig = StableFileTracker.SignatureOf(f);
                        bool judged;
                        lock (_gate)
                        {
                            judged = _settled.TryGetValue(f, out var s) && s == sig;
                        }

                        if (!judged && sig is not null)
                        {
                            _tracker.Seen(f, renamedIn: false);
                        }
                    }

                    nextScan = _time.GetTimestamp() + 2 * _time.TimestampFrequency;
                }

                foreach (var path in StableCandidates())
                {
                    await ConsiderAsync(path, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.ModelWatchError(_log, e.Message);
            }
        }
    }

    /// <summary>Files whose writing is over (renamed in, or unchanged for StableMs) and that were not judged as they are
    /// now; each is marked judged with its signature, so it is not considered again until it changes.</summary>
    private List<string> StableCandidates()
    {
        lock (_gate)
        {
            var ready = _tracker.TakeComplete((path, signature) => _settled.TryGetValue(path, out var s) && s == signature);
            foreach (var (path, signature) in ready)
            {
                _settled[path] = signature;
            }

            return ready.Select(r => r.Path).ToList();
        }
    }

    private async Task ConsiderAsync(string path, CancellationToken ct)
    {
        var report = ModelContract.Validate(path);
        if (!report.IsValid)
        {
            await RejectAsync(path, report.Violations, ct);
            return;
        }

        var sha = report.Model!.Sha256;
        ModelSlot? pending;
        lock (_gate)
        {
            pending = _pending;
        }

        if (sha == Current?.Classifier.Model.Sha256 || sha == pending?.Classifier.Model.Sha256)
        {
            Log.ModelUnchanged(_log, path, report.Model.ShortHash);
            return;
        }

        await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.ModelLoading, EventSeverity.Info,
            $"loading and warming {report.Model.Manifest.Model.Id} {report.Model.ShortHash} beside the serving model", _time.GetUtcNow(), Subject: path), ct);
        var slot = await InferenceThreads.RunAsync("load", () => TryLoad(path, ct));
        if (slot is null)
        {
            var reasons = LastRejection?.Reasons ?? [];
            var aside = await SetAsideAsync(path, reasons, "load", ct);
            await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.ModelRejected, EventSeverity.Warning,
                $"kept serving {Current?.Classifier.Model.ShortHash}: {string.Join("; ", reasons)}", _time.GetUtcNow(),
                Subject: path, Reason: reasons.Count > 0 ? reasons[0] : null)
            {
                Data = RejectionData("load", aside),
            }, ct);
            return;
        }

        lock (_gate)
        {
            _pending?.Classifier.Dispose(); // superseded before it was taken
            _pending = slot;
            _pendingSignal.TrySetResult();
        }
    }

    private async Task RejectAsync(string path, IReadOnlyList<string> reasons, CancellationToken ct)
    {
        LastRejection = new ModelRejection(path, reasons, _time.GetUtcNow());
        Interlocked.Increment(ref _rejected);
        Log.ModelRejected(_log, path, string.Join("; ", reasons));
        var aside = await SetAsideAsync(path, reasons, "validate", ct);
        await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.ModelRejected, EventSeverity.Warning,
            $"model file refused, kept serving {Current?.Classifier.Model.ShortHash ?? "nothing"}: {string.Join("; ", reasons)}",
            _time.GetUtcNow(), Subject: path, Reason: reasons.Count > 0 ? reasons[0] : null)
        {
            Data = RejectionData("validate", aside),
        }, ct);
    }

    private static Dictionary<string, string> RejectionData(string stage, string? aside)
    {
        var d = new Dictionary<string, string> { ["stage"] = stage };
        if (aside is not null)
        {
            d["set_aside"] = aside;
        }

        return d;
    }

    /// <summary>Moves a refused hot-swap drop to <see cref="RejectedDir"/> with a <c>.reason.txt</c>, so it is not judged
    /// again and the operator finds it with its reasons. Returns the new path, or null when it could not be moved (it
    /// then stays, and is not reconsidered until it changes). Model files named at start-up stay where they are.</summary>
    private async Task<string?> SetAsideAsync(string path, IReadOnlyList<string> reasons, string stage, CancellationToken ct)
    {
        try
        {
            var target = await SetAside.MoveAsync(path, RejectedDir, $"refused at {stage} {_time.GetUtcNow():O}\n{string.Join("\n", reasons)}", ct);
            lock (_gate)
            {
                _settled.Remove(path);
            }

            if (LastRejection is { } r && r.Path == path)
            {
                LastRejection = r with { SetAsideTo = target };
            }

            return target;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ModelWatchError(_log, $"cannot set refused model {path} aside: {e.Message}");
            return null;
        }
    }

    /// <summary>Loads and warms a model; null (with <see cref="LastRejection"/> set) when anything fails.</summary>
    private ModelSlot? TryLoad(string path, CancellationToken ct)
    {
        Loading = path;
        IClassifier? classifier = null;
        try
        {
            classifier = _loader.Load(path, ct);
            classifier.WarmUp(_options.Inference.MaxBatch, _options.Inference.WarmUpRuns, ct);
            foreach (var note in classifier.ProviderNotes)
            {
                Log.ProviderFallback(_log, path, note);
            }

            return new ModelSlot(classifier, Interlocked.Increment(ref _generation), _time.GetUtcNow());
        }
        catch (OperationCanceledException)
        {
            classifier?.Dispose(); // stopped during the warm-up's batch timing: the half-loaded model goes
            throw;
        }
        catch (Exception e)
        {
            classifier?.Dispose();
            var reasons = e is InvalidModelException ime ? ime.Report.Violations : [$"{e.GetType().Name}: {e.Message}"];
            LastRejection = new ModelRejection(path, reasons, _time.GetUtcNow());
            Interlocked.Increment(ref _rejected);
            Log.ModelRejected(_log, path, string.Join("; ", reasons));
            return null;
        }
        finally
        {
            Loading = null;
        }
    }

    private async Task PublishModelAsync(ModelSlot slot, CancellationToken ct)
    {
        var m = slot.Classifier.Model;
        try
        {
            await _sink.PublishModelAsync(FmaEdge.Messaging.Contract.ModelMessage.From(m, slot.Classifier.ExecutionProvider,
                providerNotes: slot.Classifier.ProviderNotes, loadedAt: slot.ActiveSinceUtc), ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            Log.SinkError(_log, "model", e.Message);
        }
    }
}

/// <summary>A warmed classifier with the generation it was loaded as (tensors made for another generation are redone). Immutable.</summary>
public sealed record ModelSlot(IClassifier Classifier, long Generation, DateTimeOffset ActiveSinceUtc);

/// <summary>A model file that was refused, with every reason. Immutable.</summary>
public sealed record ModelRejection(string Path, IReadOnlyList<string> Reasons, DateTimeOffset AtUtc)
{
    /// <summary>Where the file was moved (hot-swap drops), or null when it stayed in place.</summary>
    public string? SetAsideTo { get; init; }
}
