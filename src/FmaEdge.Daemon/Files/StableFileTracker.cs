namespace FmaEdge.Daemon.Files;

/// <summary>Files seen in one folder and not yet taken, and the rule for when one is complete: renamed in (or any file,
/// when <c>seenMeansComplete</c>: writers always rename, or no stable window), else its size and time stamp unchanged
/// for the stable window on the given clock. Fed by a <see cref="FileSystemWatcher"/> (<see cref="Watch"/>) and by the
/// owner's rescans (<see cref="Seen"/>). Used by the folder source (images) and the model manager (model drops).
/// Thread-safe.</summary>
public sealed class StableFileTracker : IDisposable
{
    private readonly TimeSpan _stableWindow;
    private readonly bool _seenMeansComplete;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Candidate> _candidates = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private long _arrivals;

    public StableFileTracker(TimeSpan stableWindow, bool seenMeansComplete, TimeProvider? time = null)
    {
        _stableWindow = stableWindow;
        _seenMeansComplete = seenMeansComplete || stableWindow <= TimeSpan.Zero;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Files seen and not yet taken.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _candidates.Count;
            }
        }
    }

    /// <summary>Notes a file (new, grown, or renamed in) and wakes <see cref="WaitAsync"/>. A file seen again keeps its
    /// place in the arrival order.</summary>
    public void Seen(string path, bool renamedIn)
    {
        lock (_gate)
        {
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

    /// <summary>Wakes <see cref="WaitAsync"/> without a file (a watcher error: the owner should rescan).</summary>
    public void Wake() => _wake.Release();

    /// <summary>Waits until something is seen, or at most <paramref name="tick"/> (stability is judged on the owner's
    /// next look, so the owner looks at least once a tick). True when woken, false when the tick passed.</summary>
    public Task<bool> WaitAsync(TimeSpan tick, CancellationToken cancellationToken) => _wake.WaitAsync(tick, cancellationToken);

    /// <summary>The complete files, in arrival order, removed from the tracker with the signature they were judged by.
    /// Candidates gone from the folder are dropped, and so is one <paramref name="skip"/> says to drop (given its path
    /// and current signature: handled before and unchanged, say).</summary>
    public List<(string Path, string Signature)> TakeComplete(Func<string, string, bool>? skip = null)
    {
        var ready = new List<(long Order, string Path, string Signature)>();
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            foreach (var (path, c) in _candidates)
            {
                if (SignatureOf(path) is not { } signature)
                {
                    _candidates.Remove(path); // deleted or moved away before it was complete
                    continue;
                }

                if (skip?.Invoke(path, signature) == true)
                {
                    _candidates.Remove(path);
                    continue;
                }

                var complete = _seenMeansComplete || c.RenamedIn;
                if (!complete)
                {
                    if (c.Signature != signature)
                    {
                        c.Signature = signature; // new or still being written: the window starts again
                        c.StableSince = now;
                        continue;
                    }

                    complete = _time.GetElapsedTime(c.StableSince, now) >= _stableWindow;
                }

                if (complete)
                {
                    ready.Add((c.Order, path, signature));
                }
            }

            ready.Sort((a, b) => a.Order.CompareTo(b.Order));
            foreach (var r in ready)
            {
                _candidates.Remove(r.Path);
            }
        }

        return ready.Select(r => (r.Path, r.Signature)).ToList();
    }

    /// <summary>A watcher on <paramref name="folder"/> (not its subfolders) whose events go to <paramref name="seen"/>
    /// (path, renamed in): the owner decides what is a candidate (its extensions, nothing in flight) and passes that on
    /// to <see cref="Seen"/>. Its errors (overflow) go to <paramref name="onError"/> and wake the owner, whose rescan
    /// still finds every file. The caller owns and disposes the watcher.</summary>
    public FileSystemWatcher Watch(string folder, string filter, Action<string, bool> seen, Action<Exception> onError)
    {
        ArgumentNullException.ThrowIfNull(seen);
        var watcher = new FileSystemWatcher(folder, filter)
        {
            IncludeSubdirectories = false,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.LastWrite,
            InternalBufferSize = 64 * 1024,
        };
        watcher.Created += (_, e) => seen(e.FullPath, false);
        watcher.Changed += (_, e) => seen(e.FullPath, false);
        watcher.Renamed += (_, e) => seen(e.FullPath, true);
        watcher.Error += (_, e) =>
        {
            onError(e.GetException());
            Wake();
        };
        watcher.EnableRaisingEvents = true;
        return watcher;
    }

    /// <summary>Size and time stamp of a directory entry without following symbolic links; null when nothing is there.
    /// Directories and links (dangling or not) count as present, so an owner can set them aside with a reason instead of
    /// ignoring them forever.</summary>
    public static (long Length, long Ticks)? Probe(string path)
    {
        var fi = new FileInfo(path);
        if (fi.LinkTarget is not null)
        {
            return (0, 0); // a link: never followed
        }

        if (fi.Exists)
        {
            return (fi.Length, fi.LastWriteTimeUtc.Ticks);
        }

        var di = new DirectoryInfo(path);
        return di.Exists ? (0, di.LastWriteTimeUtc.Ticks) : null;
    }

    /// <summary>"length|ticks" of what is at <paramref name="path"/> now; null when nothing is there.</summary>
    public static string? SignatureOf(string path) => Probe(path) is { } p ? $"{p.Length}|{p.Ticks}" : null;

    public void Dispose() => _wake.Dispose();

    private sealed class Candidate(long order, bool renamedIn)
    {
        public long Order { get; } = order;
        public bool RenamedIn { get; set; } = renamedIn;
        public string? Signature { get; set; }
        public long StableSince { get; set; }
    }
}
