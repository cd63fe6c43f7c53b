using System.Diagnostics;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Pipeline;
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
    private readonly Output.IResultSink? _sink;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly string _folder;
    private readonly string _doneDir;
    private readonly string _failedDir;
    private readonly HashSet<string> _extensions;
    private readonly Lock _gate = new();

    // Seen but not yet complete, keyed by full path; value carries the arrival order.
    private readonly Dictionary<string, Candidate> _candidates = new(StringComparer.Ordinal);

    // Handed to the pipeline and not yet completed.
    private readonly HashSet<string> _inFlight = new(StringComparer.Ordinal);

    // Files finished in this session that stay where they are (leave mode), path -> "size|mtime" when handled. Pruned at
    // each rescan to the files still there, so a folder that something else empties does not grow this forever.
    private readonly Dictionary<string, string> _handled = new(StringComparer.Ordinal);

    // Finished files whose move to done/ or failed/ failed (disk full, permissions), with their outcome: retried at every
    // rescan until it works, and kept away from the pipeline meanwhile (their result is already stored).
    private readonly Dictionary<string, WorkOutcome> _pendingMoves = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);

    private FileSystemWatcher? _watcher;
    private CancellationTokenSource? _cts;
    private Task? _loop;
    private long _arrivals;
    private long _rescans;
    private long _sequence;
    private long _frames;
    private long _errors;
    private long _lastFrameTimestamp;
    private readonly RateMeter _rate = new();
    private string _state = "stopped";
    private string? _detail;

    public FolderSource(SourceOptions options, ILogger log, Output.IResultSink? sink = null, TimeProvider? time = null)
    {
        _options = options;
        _sink = sink;
        _log = log;
        _time = time ?? TimeProvider.System;
        _folder = Path.GetFullPath(options.Path);
        _doneDir = string.IsNullOrWhiteSpace(options.DoneDir) ? Path.Combine(_folder, "done") : Path.GetFullPath(options.DoneDir);
        _failedDir = string.IsNullOrWhiteSpace(options.FailedDir) ? Path.Combine(_folder, "failed") : Path.GetFullPath(options.FailedDir);
        _extensions = new HashSet<string>(options.ExtensionList, StringComparer.OrdinalIgnoreCase);
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
        _watcher = new FileSystemWatcher(_folder)
        {
            IncludeSubdirectories = false,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.LastWrite,
            InternalBufferSize = 64 * 1024,
        };
        _watcher.Created += (_, e) => Seen(e.FullPath, renamedIn: false);
        _watcher.Changed += (_, e) => Seen(e.FullPath, renamedIn: false);
        _watcher.Renamed += (_, e) => Seen(e.FullPath, renamedIn: true);
        _watcher.Error += (_, e) =>
        {
            // Overflow or a watcher failure: the rescan still finds every file.
            Log.WatcherError(_log, Id, e.GetException().Message);
            _wake.Release();
        };
        _watcher.EnableRaisingEvents = true;
    }

    /// <summary>A folder that vanished (unmounted share, deleted by hand) is reported, not recreated: creating it would
    /// write into whatever is underneath the mount point. When it comes back the watcher is renewed.</summary>
    private async Task CheckFolderAsync(CancellationToken ct)
    {
        var exists = Directory.Exists(_folder);
        if (!exists && _state != "unavailable")
        {
            _state = "unavailable";
            _detail = $"folder {_folder} is missing";
            Log.WatcherError(_log, Id, _detail);
            if (_sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new Output.DaemonEvent(Output.EventKinds.SourceDown, "warning", $"folder source {Id}: {_detail}",
                    _time.GetUtcNow(), Id, _folder, "missing"), ct);
            }
        }
        else if (exists && _state == "unavailable")
        {
            StartWatcher();
            _state = "watching";
            _detail = null;
            Log.SourceStarted(_log, Id, "folder", _folder);
            if (_sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new Output.DaemonEvent(Output.EventKinds.SourceUp, "info", $"folder source {Id} is back",
                    _time.GetUtcNow(), Id, _folder), ct);
            }
        }
    }

    public Task StartAsync(IImageSink input, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_folder);
        if (_options.After == "move")
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

        _state = "watching";
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

        _state = "stopped";
    }

    public bool Trigger() => false;

    public SourceState GetState()
    {
        long pending;
        lock (_gate)
        {
            pending = _candidates.Count + _inFlight.Count + _pendingMoves.Count;
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

            if (_options.After == "move" && Probe(path) is not null)
            {
                await MoveAsync(path, outcome, cancellationToken);
                return;
            }

            if (_options.After == "move" && outcome.Status == WorkStatus.Failed)
            {
                // Gone before it could be set aside (deleted while queued): the reason file alone records what happened.
                await WriteReasonAsync(UniqueTarget(_failedDir, Path.GetFileName(path)), outcome.Reason, cancellationToken);
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
        var target = UniqueTarget(failed ? _failedDir : _doneDir, Path.GetFileName(path));
        try
        {
            if (failed)
            {
                // The reason first: a file in failed/ without its reason would be a mystery.
                await WriteReasonAsync(target, outcome.Reason, ct);
            }

            MoveEntry(path, target);
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
                    await Events.EmitAsync(_sink, _log, new Output.DaemonEvent(Output.EventKinds.MoveRecovered, "info",
                        $"folder source {Id}: files move to done/ and failed/ again", _time.GetUtcNow(), Id, Path.GetDirectoryName(target)), ct);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A move across file systems copies: never leave a partial copy behind while the original is still here.
            if (Probe(path) is not null)
            {
                TryDelete(target);
                TryDelete(Path.Combine(Path.GetDirectoryName(target)!, FitName(Path.GetFileName(target), ".reason.txt") + ".reason.txt"));
            }

            bool first;
            bool again;
            lock (_gate)
            {
                first = _pendingMoves.Count == 0;
                again = !_pendingMoves.TryAdd(path, outcome);
            }

            _detail = $"cannot move {Path.GetFileName(path)} to {Path.GetDirectoryName(target)}: {e.Message} (result stored; retried)";
            if (!again)
            {
                Log.MoveFailed(_log, Id, path, e.Message); // once per file, not at every retry
            }

            if (first && _sink is not null)
            {
                await Events.EmitAsync(_sink, _log, new Output.DaemonEvent(Output.EventKinds.MoveFailed, "error",
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
            if (Probe(path) is null)
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

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
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
    }

    private void Remember(string path)
    {
        if (Probe(path) is { } p)
        {
            lock (_gate)
            {
                _handled[path] = Signature(p);
            }
        }
    }

    private static string Signature((long Length, long Ticks) p) => $"{p.Length}|{p.Ticks}";

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

    /// <summary>Size and time stamp of a directory entry without following symbolic links; null when nothing is there.
    /// Directories, dangling links and other non-files named like images count as present, so they reach the pipeline
    /// and are set aside with a reason instead of being ignored silently forever.</summary>
    private static (long Length, long Ticks)? Probe(string path)
    {
        var fi = new FileInfo(path);
        if (fi.LinkTarget is not null)
        {
            return (0, 0); // a link (possibly dangling): never followed, the pipeline refuses it at once
        }

        if (fi.Exists)
        {
            return (fi.Length, fi.LastWriteTimeUtc.Ticks);
        }

        var di = new DirectoryInfo(path);
        return di.Exists ? (0, di.LastWriteTimeUtc.Ticks) : null;
    }

    /// <summary>Moves a file, directory or symbolic link (the link itself, never its target).</summary>
    private static void MoveEntry(string path, string target)
    {
        if (new FileInfo(path).LinkTarget is { } link)
        {
            // File.Move wants an existing target for links on some runtimes; recreating the link is exact and safe.
            File.CreateSymbolicLink(target, link);
            File.Delete(path);
        }
        else if (Directory.Exists(path))
        {
            Directory.Move(path, target);
        }
        else
        {
            File.Move(path, target);
        }
    }

    /// <summary>Writes <c>&lt;target&gt;.reason.txt</c>; when that name would pass the 255-byte limit of Linux file
    /// names, the name is shortened and the full file name is written inside.</summary>
    private static async Task WriteReasonAsync(string target, string? reason, CancellationToken ct)
    {
        const string suffix = ".reason.txt";
        var name = Path.GetFileName(target);
        var text = (reason ?? "unknown") + "\n";
        var fitted = FitName(name, suffix);
        if (fitted != name)
        {
            text += "file: " + name + "\n";
        }

        await File.WriteAllTextAsync(Path.Combine(Path.GetDirectoryName(target)!, fitted + suffix), text, ct);
    }

    /// <summary>The longest prefix of <paramref name="name"/> that, followed by <paramref name="suffix"/>, fits in
    /// <see cref="MaxNameBytes"/> UTF-8 bytes (whole characters only).</summary>
    private static string FitName(string name, string suffix)
    {
        var budget = MaxNameBytes - System.Text.Encoding.UTF8.GetByteCount(suffix);
        if (System.Text.Encoding.UTF8.GetByteCount(name) <= budget)
        {
            return name;
        }

        var e = System.Globalization.StringInfo.GetTextElementEnumerator(name);
        var kept = new System.Text.StringBuilder();
        var used = 0;
        while (e.MoveNext())
        {
            var element = (string)e.Current;
            var n = System.Text.Encoding.UTF8.GetByteCount(element);
            if (used + n > budget)
            {
                break;
            }

            kept.Append(element);
            used += n;
        }

        return kept.ToString();
    }

    // Linux NAME_MAX: a longer name cannot be created (ENAMETOOLONG).
    private const int MaxNameBytes = 255;

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
            if (_inFlight.Contains(path) || _pendingMoves.ContainsKey(path))
            {
                return;
            }

            if (_candidates.TryGetValue(path, out var c))
            {
                c.RenamedIn |= renamedIn;
            }
            else
            {
                _candidates[path] = new Candidate(++_arrivals, renamedIn);
            }
        }

        _wake.Release();
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
                        SilentIfCommitted = _options.After == "leave",
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

                await _wake.WaitAsync(tick, ct);
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

    /// <summary>Candidates that are complete, in arrival order; they move to in-flight.</summary>
    private List<string> ReadyFiles()
    {
        var ready = new List<(long Order, string Path)>();
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            foreach (var (path, c) in _candidates)
            {
                if (Probe(path) is not { } fi)
                {
                    _candidates.Remove(path); // deleted or moved away before it was complete
                    continue;
                }

                var key = Signature(fi);
                if (_handled.TryGetValue(path, out var handled) && handled == key)
                {
                    _candidates.Remove(path);
                    continue;
                }

                var complete = _options.Completion == "rename" || c.RenamedIn || _options.StableMs == 0;
                if (!complete)
                {
                    if (c.Signature != key)
                    {
                        c.Signature = key;
                        c.StableSince = now;
                        continue;
                    }

                    complete = _time.GetElapsedTime(c.StableSince, now).TotalMilliseconds >= _options.StableMs;
                }

                if (complete)
                {
                    ready.Add((c.Order, path));
                }
            }

            ready.Sort((a, b) => a.Order.CompareTo(b.Order));
            foreach (var (_, path) in ready)
            {
                _candidates.Remove(path);
                _inFlight.Add(path);
            }
        }

        return ready.Select(r => r.Path).ToList();
    }

    private static string UniqueTarget(string dir, string name)
    {
        var target = Path.Combine(dir, name);
        for (var i = 1; Probe(target) is not null; i++)
        {
            // name.1.png, shortened when the number would push a long name past the file-name limit.
            var tail = $".{i}{Path.GetExtension(name)}";
            target = Path.Combine(dir, FitName(Path.GetFileNameWithoutExtension(name), tail) + tail);
        }

        return target;
    }

    private sealed class Candidate(long order, bool renamedIn)
    {
        public long Order { get; } = order;
        public bool RenamedIn { get; set; } = renamedIn;
        public string? Signature { get; set; }
        public long StableSince { get; set; }
    }
}
