using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;

namespace FmaEdge.Daemon.Pipeline;

/// <summary>Keeps ONNX Runtime's intra-op workers ahead of the daemon's other threads (decoding, commits, MQTT, the
/// embedded broker) when they compete for the cores. With as many intra-op threads as cores, every burst of other work
/// pre-empts one worker and the whole parallel operator waits for it; at a lower priority that work runs in the gaps
/// instead. Linux nice values are per thread and inherited by the threads a thread creates, and ONNX Runtime creates
/// its workers when a session is made, so they take the priority of the thread that loads the model. Threads started
/// here (named <see cref="NamePrefix"/>...) come from one thread that is never lowered, so model loads and the inference
/// stage, and the workers they create, keep the normal priority; <see cref="LowerOthers"/> lowers every other thread of
/// the process. Lowering cannot be undone without privileges. Linux only (elsewhere nothing is lowered). Thread-safe.</summary>
public static partial class InferenceThreads
{
    /// <summary>Threads whose name starts with this keep the normal priority (Linux keeps 15 characters of a name).</summary>
    public const string NamePrefix = "fma-infer";

    private const int PrioProcess = 0; // setpriority's "which": with a thread id, that one thread (Linux)
    private static readonly BlockingCollection<Action> StartRequests = new();
    private static readonly Lazy<Thread> Starter = new(() =>
    {
        var t = new Thread(() =>
        {
            foreach (var start in StartRequests.GetConsumingEnumerable())
            {
                start();
            }
        })
        { IsBackground = true, Name = NamePrefix + "-start" };
        t.Start();
        return t;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Creates the starter thread now, while the calling thread still has the normal priority. Call at start-up,
    /// before anything is lowered; later calls do nothing.</summary>
    public static void Initialize() => _ = Starter.Value;

    /// <summary>Starts <paramref name="body"/> on a new background thread at the normal priority, named
    /// <see cref="NamePrefix"/>-<paramref name="role"/>.</summary>
    public static void Start(string role, Action body)
    {
        Initialize();
        StartRequests.Add(() => new Thread(() => body()) { IsBackground = true, Name = $"{NamePrefix}-{role}" }.Start());
    }

    /// <summary>Runs <paramref name="work"/> on a new thread at the normal priority (see <see cref="Start"/>); the task
    /// completes with its result or exception.</summary>
    public static Task<T> RunAsync<T>(string role, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Start(role, () =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task;
    }

    /// <summary>Sets every thread of this process not named <see cref="NamePrefix"/>... to at least
    /// <paramref name="nice"/> (1..19; higher is lower priority); threads already lower are left alone. Returns how
    /// many were lowered now. Threads that end meanwhile are skipped; 0 off Linux.</summary>
    public static int LowerOthers(int nice)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nice, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nice, 19);
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        var lowered = 0;
        foreach (var (tid, name) in Threads())
        {
            if (name.StartsWith(NamePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            Marshal.SetLastPInvokeError(0);
            var current = GetPriority(PrioProcess, tid);
            if (current == -1 && Marshal.GetLastPInvokeError() != 0)
            {
                continue; // the thread ended
            }

            if (current < nice && SetPriority(PrioProcess, tid, nice) == 0)
            {
                lowered++;
            }
        }

        return lowered;
    }

    /// <summary>The nice value of each thread of this process by name (Linux; empty elsewhere), for status and tests.</summary>
    public static IReadOnlyList<(int Tid, string Name, int Nice)> Priorities()
    {
        var list = new List<(int, string, int)>();
        if (!OperatingSystem.IsLinux())
        {
            return list;
        }

        foreach (var (tid, name) in Threads())
        {
            Marshal.SetLastPInvokeError(0);
            var nice = GetPriority(PrioProcess, tid);
            if (nice != -1 || Marshal.GetLastPInvokeError() == 0)
            {
                list.Add((tid, name, nice));
            }
        }

        return list;
    }

    private static IEnumerable<(int Tid, string Name)> Threads()
    {
        string[] dirs;
        try
        {
            dirs = Directory.GetDirectories("/proc/self/task");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var dir in dirs)
        {
            string name;
            try
            {
                name = File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // the thread ended
            }

            yield return (int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture), name);
        }
    }

    [LibraryImport("libc", EntryPoint = "getpriority", SetLastError = true)]
    private static partial int GetPriority(int which, int who);

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int prio);
}
