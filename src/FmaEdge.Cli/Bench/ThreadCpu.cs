using System.Globalization;

namespace FmaEdge.Cli.Bench;

/// <summary>CPU time of this process's threads from /proc/self/task/*/stat (Linux; empty elsewhere), so a run can say
/// where the cores went: ONNX Runtime's workers, .NET's thread pool, the SQLite/MQTT side. Immutable snapshot.</summary>
public sealed class ThreadCpu
{
    // The kernel's clock ticks per second for utime/stime; 100 on every Linux this runs on (USER_HZ).
    private const double TicksPerSecond = 100;
    private readonly Dictionary<int, (string Name, long Ticks)> _threads;
    private readonly long _timestamp;

    private ThreadCpu(Dictionary<int, (string, long)> threads)
    {
        _threads = threads;
        _timestamp = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>Reads every thread's name and CPU ticks now.</summary>
    public static ThreadCpu Take()
    {
        var threads = new Dictionary<int, (string, long)>();
        try
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
            {
                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var open = stat.IndexOf('(', StringComparison.Ordinal);
                    var close = stat.LastIndexOf(')');
                    var name = stat[(open + 1)..close];
                    var fields = stat[(close + 2)..].Split(' ');
                    // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
                    var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                    threads[int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture)] = (name, ticks);
                }
                catch (Exception e) when (e is IOException or FormatException or ArgumentOutOfRangeException or IndexOutOfRangeException)
                {
                    // The thread ended while we read it.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return new ThreadCpu(threads);
    }

    /// <summary>CPU seconds per thread name since <paramref name="earlier"/> (threads that ended meanwhile are missed),
    /// busiest first, with the cores used on average over the wall time between the snapshots.</summary>
    public CpuUse Since(ThreadCpu earlier)
    {
        var wall = System.Diagnostics.Stopwatch.GetElapsedTime(earlier._timestamp, _timestamp).TotalSeconds;
        var byName = new Dictionary<string, (double Seconds, int Threads)>(StringComparer.Ordinal);
        foreach (var (tid, (name, ticks)) in _threads)
        {
            var before = earlier._threads.TryGetValue(tid, out var e) && e.Name == name ? e.Ticks : 0;
            var s = (ticks - before) / TicksPerSecond;
            if (s <= 0)
            {
                continue;
            }

            var key = Normalise(name);
            var cur = byName.GetValueOrDefault(key);
            byName[key] = (cur.Seconds + s, cur.Threads + 1);
        }

        var total = byName.Values.Sum(v => v.Seconds);
        return new CpuUse(wall, total, wall > 0 ? total / wall : 0,
            byName.OrderByDescending(kv => kv.Value.Seconds).Select(kv => new ThreadGroupCpu(kv.Key, kv.Value.Threads, kv.Value.Seconds)).ToList());
    }

    // ".NET TP Worker" and friends keep their names; numbered names ("fma-edge" main, ORT's unnamed pool threads carry the
    // process name) stay as they are.
    private static string Normalise(string name) => name.Trim();
}

/// <summary>Where CPU time went over a stretch of wall time.</summary>
/// <param name="Cores">Average cores busy (CPU seconds / wall seconds).</param>
public sealed record CpuUse(double WallSeconds, double CpuSeconds, double Cores, IReadOnlyList<ThreadGroupCpu> Threads);

/// <summary>CPU seconds spent by the threads of one name.</summary>
public sealed record ThreadGroupCpu(string Name, int Threads, double CpuSeconds);
