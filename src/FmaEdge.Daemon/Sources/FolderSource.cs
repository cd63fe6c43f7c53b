using System.Diagnostics;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Files;
using FmaEdge.Daemon.Output;
using FmaEdge.Messaging.Contract;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Sources;

/// <summary>Watches a folder for images: files present at start and files created or renamed in later, each taken once
/// complete (stable size and time stamp, or on rename-in), handed to the pipeline in arrival order, then moved to done/
/// or failed/ (with a <c>.reason.txt</c>) or left in place. A FileSystemWatcher gives prompt notice; a periodic rescan
/// catches anything it missed. Files never drop: when the pipeline is full the source waits.
/// Thread-safe: the watcher, scanner and completion callbacks share one lock.</summary>
public sealed class FolderSource : IImageSource, IWorkCompletion
{
    private readonly SourceOptions _options;
    private readonly IReporter? _sink;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly string _folder;
    private readonly string _doneDir;
    private readonly string _failedDir;
    private readonly HashSet<string> _extensions;
    private readonly Lock _gate = new();

    // Seen but not yet complete, in arrival order.
    private readonly StableFileTracker _tracker;

    // Handed to the pipeline and not yet completed.
    private readonly HashSet<string> _inFlight = new(StringComparer.Ordinal);

    // Files finished in this session that stay where they are (leave mode), path -> "size|mtime" when handled. Pruned at
    // each rescan to the files still there, so a folder that something else empties does not grow this forever.
    private readonly Dictionary<string, string> _handled = new(StringComparer.Ordinal);

    // Finished files whose move to done/ or failed/ failed (disk full, permissions), with their outcome: retried at every
    // rescan until it works, and kept away from the pipeline meanwhile (their result is already stored).
    private readonly Dictionary<string, WorkOutcome> _pendingMoves = new(StringComparer.Ordinal);

    private FileSystemWatcher? _watcher;
    private CancellationTokenSource? _cts;
    private Task? _loop;
    private long _rescans;
    private long _sequence;
    private long _frames;
    private long _errors;
    private long _lastFrameTimestamp;
    private readonly RateMeter _rate = new();
    private string _state = SourceStates.Stopped;
    private string? _detail;

    public FolderSource(SourceOptions options, ILogger log, IReporter? sink = null, TimeProvider? time = null)
    {
        _options = options;
        _sink = sink;
        _log = log;
        _time = time ?? TimeProvider.System;
        _folder = Path.GetFullPath(options.Path);
        _doneDir = string.IsNullOrWhiteSpace(options.DoneDir) ? Path.Combine(_folder, "done") : Path.GetFullPath(options.DoneDir);
        _failedDir = string.IsNullOrWhiteSpace(options.FailedDir) ? Path.Combine(_folder, "failed") : Path.GetFullPath(options.FailedDir);
        _extensions = new HashSet<string>(options.ExtensionList, StringComparer.OrdinalIgnoreCase);
        _tracker = new StableFileTracker(TimeSpan.FromMilliseconds(options.StableMs), seenMeansComplete: options.Completion == FolderCompletion.Rename, _time);
    }

    /// <summary>Checks a folder source's settings (<paramref name="key"/>: its configuration path; <paramref name="watched"/>:
    /// folders other sources watch).</summary>
    public static void Validate(SourceOptions s, string key, ConfigErrors errors, ISet<string> watched)
    {
        if (string.IsNullOrWhiteSpace(s.Path))
        {
            errors.Add($"{key}:Path is required for a folder source");
        }
        else if (!watched.Add(Path.GetFullPath(s.Path)))
        {
            errors.Add($"{key}:Path '{s.Path}' is watched by another source");
        }

        if (s.ExtensionList.Count == 0 || s.ExtensionList.Any(x => !x.StartsWith('.')))
        {
            errors.Add($"{key}:Extensions must list comma-separated extensions starting with '.'");
        }

        errors.Range($"{key}:StableMs", s.StableMs, 0, 600_000);
        errors.Range($"{key}:RescanSeconds", s.RescanSeconds, 1, 3600);
    }

    public string Id => _options.Id;

    /// <summary>Where processed files go in move mode.</summary>
    public string DoneDir => _doneDir;

    /// <summary>Full rescans of the folder finished since start (the first comes at start).</summary>
    public long Rescans => Interlocked.Read(ref _rescans);

    /// <summary>Where failed files and their reasons go in move mode.</summary>
    public string FailedDir => _failedDir;

    private void StartWatcher()
    {
        _watcher?.Dispose();
        // Overflow or a watcher failure: the rescan still finds every file.
        // Every event goes through Seen's checks (extension, in flight), as the rescan's listing does: a writer's
        // "x.png.part" is never a candidate, however long it pauses.
        _watcher = _tracker.Watch(_folder, "*", Seen, e => Log.WatcherError(_log, Id, e.Message));
    }

    /// <summary>A folder that vanished (unmounted share, deleted by hand) is reported, not recreated: creating it would
    /// write into whatever is underneath the mount point. When it comes back the watcher is renewed.</summary>
    private async Task CheckFolderAsync(CancellationToken ct)
    {
        var exists = Directory.Exists(_folder);
        if (!exists && _state != SourceStates.Unavailable)
        {
            _state = SourceStates.Unavailable;
            _detail = $"folder {_folder} is missing";
            Log.WatcherError(_log, Id, _detail);
            if (_sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceDown, EventSeverity.Warning, $"folder source {Id}: {_detail}",
                    _time.GetUtcNow(), Id, _folder, "missing"), ct);
            }
        }
        else if (exists && _state == SourceStates.Unavailable)
        {
            StartWatcher();
            _state = SourceStates.Watching;
            _detail = null;
            Log.SourceStarted(_log, Id, "folder", _folder);
            if (_sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.SourceUp, EventSeverity.Info, $"folder source {Id} is back",
                    _time.GetUtcNow(), Id, _folder), ct);
            }
        }
    }

    public Task StartAsync(IImageSink input, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_folder);
        if (_options.After == FolderAfter.Move)
        {
            Directory.CreateDirectory(_doneDir);
            Directory.CreateDirectory(_failedDir);
        }

        StartWatcher();

        // Files already present: oldest first, so a backlog keeps its arrival order.
        foreach (var f in OldestFirst(ListFiles() ?? []))
        {
            Seen(f.FullName, renamedIn: false);
        }

        _state = SourceStates.Watching;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _loop = Task.Run(() => RunAsync(input, _cts.Token), CancellationToken.None);
        Log.SourceStarted(_log, Id, "folder", _folder);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_watcher is not null)
        {
            _watcher.EnableRaisingEvents = false;
        }

        if (_cts is not null)
        {
            await _cts.CancelAsync();
        }

        if (_loop is not null)
        {
            try
            {
                await _loop.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }

        _state = SourceStates.Stopped;
    }

    public bool Trigger() => false;

    public SourceState GetState()
    {
        long pending;
        lock (_gate)
        {
            pending = _tracker.Count + _inFlight.Count + _pendingMoves.Count;
        }

        var last = Interlocked.Read(ref _lastFrameTimestamp);
        double? age = last == 0 ? null : Stopwatch.GetElapsedTime(last).TotalSeconds;
        return new SourceState(Id, "folder", _state, Interlocked.Read(ref _frames), _rate.PerSecond, age, Interlocked.Read(ref _errors), 0, pending, _detail);
    }

    public async ValueTask CompleteAsync(ImageWork work, WorkOutcome outcome, CancellationToken cancellationToken)
    {
        var path = work.FilePath!;
        if (outcome.Status == WorkStatus.Failed)
        {
            Interlocked.Increment(ref _errors);
        }

        try
        {
            if (outcome.Status == WorkStatus.Abandoned)
            {
                return; // stays in the folder for the next start
            }

            if (_options.After == FolderAfter.Move && StableFileTracker.Probe(path) is not null)
            {
                await MoveAsync(path, outcome, cancellationToken);
                return;
            }

            if (_options.After == FolderAfter.Move && outcome.Status == WorkStatus.Failed)
            {
                // Gone before it could be set aside (deleted while queued): the reason file alone records what happened.
                await SetAside.WriteReasonAsync(SetAside.UniqueTarget(_failedDir, Path.GetFileName(path)), outcome.Reason ?? "unknown", cancellationToken);
                return;
            }

            Remember(path);
        }
        finally
        {
            lock (_gate)
            {
                _inFlight.Remove(path);
            }
        }
    }

    /// <summary>Moves a finished file to done/ or failed/. When that fails (disk full, permissions) the file stays where
    /// it is with its result already stored: it is kept out of the pipeline, the move is retried at every rescan, status
    /// is degraded and a move-failed event says so.</summary>
    private async Task MoveAsync(string path, WorkOutcome outcome, CancellationToken ct)
    {
        var failed = outcome.Status == WorkStatus.Failed;
        var dir = failed ? _failedDir : _doneDir;
        try
        {
            var target = await SetAside.MoveAsync(path, dir, failed ? outcome.Reason ?? "unknown" : null, ct);
            bool recovered;
            lock (_gate)
            {
                recovered = _pendingMoves.Remove(path) && _pendingMoves.Count == 0;
            }

            if (recovered)
            {
                _detail = null;
                Log.MoveRecovered(_log, Id, _doneDir);
                if (_sink is not null)
                {
                    await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.MoveRecovered, EventSeverity.Info,
                        $"folder source {Id}: files move to done/ and failed/ again", _time.GetUtcNow(), Id, Path.GetDirectoryName(target)), ct);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            bool first;
            bool again;
            lock (_gate)
            {
                first = _pendingMoves.Count == 0;
                again = !_pendingMoves.TryAdd(path, outcome);
            }

            _detail = $"cannot move {Path.GetFileName(path)} to {dir}: {e.Message} (result stored; retried)";
            if (!again)
            {
                Log.MoveFailed(_log, Id, path, e.Message); // once per file, not at every retry
            }

            if (first && _sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.MoveFailed, EventSeverity.Error,
                    $"folder source {Id}: {_detail}", _time.GetUtcNow(), Id, path, e.Message), ct);
            }
        }
    }

    private async Task RetryMovesAsync(CancellationToken ct)
    {
        List<KeyValuePair<string, WorkOutcome>> pending;
        lock (_gate)
        {
            pending = [.. _pendingMoves];
        }

        foreach (var (path, outcome) in pending)
        {
            if (StableFileTracker.Probe(path) is null)
            {
                lock (_gate)
                {
                    _pendingMoves.Remove(path); // removed by hand: nothing left to move
                }

                continue;
            }

            await MoveAsync(path, outcome, ct);
        }

        lock (_gate)
        {
            if (_pendingMoves.Count == 0 && _detail?.StartsWith("cannot move", StringComparison.Ordinal) == true)
            {
                _detail = null;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _watcher?.Dispose();
        _watcher = null;
        _cts?.Dispose();
        _cts = null;
        _loop = null;
        _tracker.Dispose();
    }

    private void Remember(string path)
    {
        if (StableFileTracker.SignatureOf(path) is { } signature)
        {
            lock (_gate)
            {
                _handled[path] = signature;
            }
        }
    }

    /// <summary>Forgets handled files that are no longer in the folder (<paramref name="present"/>: this rescan's listing).</summary>
    private void ForgetGone(IReadOnlyCollection<FileSystemInfo> present)
    {
        lock (_gate)
        {
            if (_handled.Count == 0)
            {
                return;
            }

            var here = present.Select(f => f.FullName).ToHashSet(StringComparer.Ordinal);
            foreach (var path in _handled.Keys.Where(k => !here.Contains(k)).ToList())
            {
                _handled.Remove(path);
            }
        }
    }

    /// <summary>Files remembered as handled in this session (leave mode), for tests and status.</summary>
    internal int HandledCount
    {
        get
        {
            lock (_gate)
            {
                return _handled.Count;
            }
        }
    }

    /// <summary>The folder's image-named entries, or null when it cannot be listed (nothing is forgotten then).</summary>
    private List<FileSystemInfo>? ListFiles()
    {
        try
        {
            // Files and directories alike: a directory named like an image is reported and set aside, not skipped forever.
            return new DirectoryInfo(_folder).EnumerateFileSystemInfos()
                .Where(f => _extensions.Contains(f.Extension) && f.FullName != _doneDir && f.FullName != _failedDir).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.WatcherError(_log, Id, e.Message);
            return null;
        }
    }

    private void Seen(string path, bool renamedIn)
    {
        if (!_extensions.Contains(Path.GetExtension(path)) || Path.GetDirectoryName(path) != _folder)
        {
            return;
        }

        lock (_gate)
        {
            if (!_inFlight.Contains(path) && !_pendingMoves.ContainsKey(path))
            {
                _tracker.Seen(path, renamedIn);
            }
        }
    }

    private async Task RunAsync(IImageSink input, CancellationToken ct)
    {
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(_options.StableMs / 4, 25, 250));
        var nextRescan = _time.GetTimestamp();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (_time.GetElapsedTime(nextRescan) >= TimeSpan.Zero)
                {
                    await CheckFolderAsync(ct);
                    await RetryMovesAsync(ct);
                    var files = ListFiles();
                    if (files is not null)
                    {
                        ForgetGone(files);
                    }

                    // Files the watcher missed: oldest first, as at start.
                    foreach (var f in OldestFirst(files ?? []))
                    {
                        Seen(f.FullName, renamedIn: false);
                    }

                    nextRescan = _time.GetTimestamp() + (long)(_options.RescanSeconds * (double)_time.TimestampFrequency);
                    Interlocked.Increment(ref _rescans);
                }

                foreach (var path in ReadyFiles())
                {
                    var work = new ImageWork
                    {
                        SourceId = Id,
                        Sequence = Interlocked.Increment(ref _sequence),
                        ImageId = Path.GetFileName(path),
                        FilePath = path,
                        SilentIfCommitted = _options.After == FolderAfter.Leave,
                        CapturedUtc = SafeMtime(path),
                        ArrivalTimestamp = Stopwatch.GetTimestamp(),
                        Completion = this,
                    };

                    // Waits while the pipeline is full: files are never dropped.
                    await input.WriteAsync(work, ct);
                    Interlocked.Increment(ref _frames);
                    Interlocked.Exchange(ref _lastFrameTimestamp, Stopwatch.GetTimestamp());
                    _rate.Mark();
                }

                await _tracker.WaitAsync(tick, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (System.Threading.Channels.ChannelClosedException)
            {
                break; // the pipeline is draining; what is left stays in the folder for the next start
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.WatcherError(_log, Id, e.Message);
                await Task.Delay(tick, _time, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private static IEnumerable<FileSystemInfo> OldestFirst(IEnumerable<FileSystemInfo> files) =>
        files.OrderBy(f => f.LastWriteTimeUtc).ThenBy(f => f.Name, StringComparer.Ordinal);

    private static DateTimeOffset SafeMtime(string path)
    {
        try
        {
            return File.GetLastWriteTimeUtc(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return DateTimeOffset.UtcNow;
        }
    }

    /// <summary>Candidates that are complete, in arrival order; they move to in-flight. A file handled before in this
    /// session (leave mode) and unchanged since is not taken again.</summary>
    private List<string> ReadyFiles()
    {
        lock (_gate)
        {
            var ready = _tracker.TakeComplete((path, signature) => _handled.TryGetValue(path, out var handled) && handled == signature)
                .Select(f => f.Path).ToList();
            _inFlight.UnionWith(ready);
            return ready;
        }
    }
}
