using System.Diagnostics;

namespace FmaEdge.Daemon.Diagnostics;

/// <summary>Events per second over the last ~10 seconds. Thread-safe.</summary>
public sealed class RateMeter
{
    private readonly Lock _gate = new();
    private readonly Queue<long> _marks = new();
    private static readonly long Window = Stopwatch.Frequency * 10;

    /// <summary>Counts one event now.</summary>
    public void Mark()
    {
        lock (_gate)
        {
            var now = Stopwatch.GetTimestamp();
            _marks.Enqueue(now);
            Trim(now);
        }
    }

    /// <summary>Events per second over the window (0 with fewer than two events).</summary>
    public double PerSecond
    {
        get
        {
            lock (_gate)
            {
                var now = Stopwatch.GetTimestamp();
                Trim(now);
                if (_marks.Count < 2)
                {
                    return 0;
                }

                var span = (now - _marks.Peek()) / (double)Stopwatch.Frequency;
                return span <= 0 ? 0 : _marks.Count / Math.Max(span, 1.0);
            }
        }
    }

    private void Trim(long now)
    {
        while (_marks.Count > 0 && now - _marks.Peek() > Window)
        {
            _marks.Dequeue();
        }

        while (_marks.Count > 10_000)
        {
            _marks.Dequeue();
        }
    }
}

/// <summary>Latency samples of one stage in a fixed ring (the last 2048), with percentiles on demand. Thread-safe.</summary>
public sealed class LatencyRecorder
{
    private readonly Lock _gate = new();
    private readonly double[] _ring = new double[2048];
    private long _count;

    /// <summary>Raised with every sample in milliseconds (the metrics endpoint's histograms). Must not block.</summary>
    public event Action<double>? Recorded;

    /// <summary>Records one sample in milliseconds.</summary>
    public void Record(double ms)
    {
        lock (_gate)
        {
            _ring[_count % _ring.Length] = ms;
            _count++;
        }

        Recorded?.Invoke(ms);
    }

    /// <summary>Samples recorded since start.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>p50, p99 and max of the retained samples (zeros when empty).</summary>
    public LatencySummary Summarise()
    {
        double[] copy;
        lock (_gate)
        {
            var n = (int)Math.Min(_count, _ring.Length);
            copy = _ring.AsSpan(0, n).ToArray();
        }

        if (copy.Length == 0)
        {
            return new LatencySummary(0, 0, 0, 0);
        }

        Array.Sort(copy);
        return new LatencySummary(copy.Length, At(copy, 0.50), At(copy, 0.99), copy[^1]);
    }

    private static double At(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
}

/// <summary>Percentiles of one stage's latency in milliseconds over <see cref="Samples"/> recent images.</summary>
public sealed record LatencySummary(long Samples, double P50Ms, double P99Ms, double MaxMs);

/// <summary>Tracks whether a stage is idle, or busy and since when: the watchdog's view of a wedged pipeline. A stage run
/// by several workers at once (inference) gives each its own <c>worker</c> number; the stage is busy for as long as
/// its longest-busy worker. Thread-safe.</summary>
public sealed class StageHeartbeat(string name, int workers = 1)
{
    private readonly long[] _busySince = new long[Math.Max(1, workers)];   // Stopwatch timestamps; 0 while idle

    public string Name { get; } = name;

    public void Busy(int worker = 0) => Interlocked.Exchange(ref _busySince[worker], Stopwatch.GetTimestamp());

    public void Idle(int worker = 0) => Interlocked.Exchange(ref _busySince[worker], 0);

    /// <summary>How long the current item of the longest-busy worker has taken; zero while every worker is idle.</summary>
    public TimeSpan BusyFor
    {
        get
        {
            var longest = TimeSpan.Zero;
            for (var i = 0; i < _busySince.Length; i++)
            {
                var since = Interlocked.Read(ref _busySince[i]);
                if (since != 0 && Stopwatch.GetElapsedTime(since) > longest)
                {
                    longest = Stopwatch.GetElapsedTime(since);
                }
            }

            return longest;
        }
    }
}
