namespace FmaEdge.Daemon.Models;

/// <summary>What timing batch sizes at load found: milliseconds per image for each size tried, and the size chosen.</summary>
public sealed record BatchTiming(IReadOnlyDictionary<int, double> MsPerImage, int Chosen, int Rounds);

/// <summary>Chooses the batch a CPU model serves with (<c>Inference:TimeBatches</c>). A small model runs fastest per
/// image in full batches; a large one slower, because a batch's activations outgrow the caches (ConvNeXt-T@224 with
/// two one-thread runs at once on 2 cores: ~17 % more time per image at batch 8 than at 1, docs/performance.md), so
/// one fixed <c>MaxBatch</c> cannot suit both. Runs each size <c>concurrent</c> times at once (the way the pipeline
/// runs it), sizes interleaved in rounds so that a busy machine (a swap beside the serving model) slows them alike,
/// and keeps the largest size whose median time per image is within <see cref="Tolerance"/> of the fastest: larger
/// batches cost the pipeline less per image around inference. Takes about 3 s at most where a round is short, and
/// never starts a round after 10 s. Stateless and thread-safe.</summary>
public static class BatchSizeProbe
{
    /// <summary>How much slower per image than the fastest size a larger batch may be and still be chosen.</summary>
    public const double Tolerance = 0.05;

    private const int MinRounds = 3;
    private const int MaxRounds = 7;

    /// <summary>After this, no new round starts beyond <see cref="MinRounds"/> (the rounds begun always finish: each is
    /// a few runs of the model).</summary>
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(3);

    /// <summary>After this, not even <see cref="MinRounds"/> are waited for: on a CPU so slow that one round of sizes
    /// takes seconds (a large model on a small ARM core, or arm64 under emulation, where femto@128's first round took
    /// about half a minute), the first round decides, and loading the model does not wait minutes for the timing.
    /// Rounds that long are far less noisy than the millisecond rounds that <see cref="MinRounds"/> is for.</summary>
    private static readonly TimeSpan SlowLimit = TimeSpan.FromSeconds(10);

    /// <summary>1, 2, 4, ... below <paramref name="maxBatch"/>, then <paramref name="maxBatch"/>.</summary>
    public static IReadOnlyList<int> Sizes(int maxBatch)
    {
        var sizes = new List<int>();
        for (var s = 1; s < maxBatch; s *= 2)
        {
            sizes.Add(s);
        }

        sizes.Add(Math.Max(1, maxBatch));
        return sizes;
    }

    /// <summary>Times <paramref name="run"/> (run(size) classifies one batch of that size) for every size up to
    /// <paramref name="maxBatch"/>, <paramref name="concurrent"/> runs at once, and chooses a size.</summary>
    public static BatchTiming Measure(Action<int> run, int maxBatch, int concurrent, CancellationToken ct, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(run);
        time ??= TimeProvider.System;
        var sizes = Sizes(maxBatch);
        var atOnce = Math.Max(1, concurrent);
        var samples = sizes.ToDictionary(s => s, _ => new List<double>());
        using var crew = new Crew(run, atOnce - 1, time);
        var start = time.GetTimestamp();
        var rounds = 0;
        while (rounds < MaxRounds && (rounds == 0 || MayStartAnother(rounds, time.GetElapsedTime(start))))
        {
            ct.ThrowIfCancellationRequested();
            foreach (var size in sizes)
            {
                samples[size].Add(crew.Time(size) / (size * atOnce));
            }

            rounds++;
        }

        var median = samples.ToDictionary(kv => kv.Key, kv => Median(kv.Value));
        return new BatchTiming(median, Choose(median), rounds);
    }

    private static bool MayStartAnother(int rounds, TimeSpan elapsed) =>
        elapsed < Budget || (rounds < MinRounds && elapsed < SlowLimit);

    /// <summary>The largest size whose time per image is within <see cref="Tolerance"/> of the fastest size's.</summary>
    public static int Choose(IReadOnlyDictionary<int, double> msPerImage)
    {
        ArgumentNullException.ThrowIfNull(msPerImage);
        var fastest = msPerImage.Values.Min();
        return msPerImage.Where(kv => kv.Value <= fastest * (1 + Tolerance)).Max(kv => kv.Key);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        var mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Runs one size on this thread and on dedicated threads at the same moment (the thread pool may run
    /// "parallel" work one after another), and times it. The threads live for one measurement.</summary>
    private sealed class Crew : IDisposable
    {
        private readonly Action<int> _run;
        private readonly TimeProvider _time;
        private readonly Barrier _start;
        private readonly Barrier _end;
        private readonly Thread[] _threads;
        private int _size;
        private bool _stop;
        private Exception? _failed;

        public Crew(Action<int> run, int others, TimeProvider time)
        {
            _run = run;
            _time = time;
            _start = new Barrier(others + 1);
            _end = new Barrier(others + 1);
            _threads = Enumerable.Range(0, others).Select(_ => new Thread(Work) { IsBackground = true, Name = "fma-batch-probe" }).ToArray();
            foreach (var t in _threads)
            {
                t.Start();
            }
        }

        /// <summary>Milliseconds until every thread has run one batch of <paramref name="size"/>.</summary>
        public double Time(int size)
        {
            Volatile.Write(ref _size, size);
            _start.SignalAndWait();
            var t0 = _time.GetTimestamp();
            try
            {
                _run(size);
            }
            finally
            {
                _end.SignalAndWait();
            }

            if (Interlocked.Exchange(ref _failed, null) is { } e)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
            }

            return _time.GetElapsedTime(t0).TotalMilliseconds;
        }

        public void Dispose()
        {
            Volatile.Write(ref _stop, true);
            _start.SignalAndWait();
            foreach (var t in _threads)
            {
                t.Join();
            }

            _start.Dispose();
            _end.Dispose();
        }

        private void Work()
        {
            while (true)
            {
                _start.SignalAndWait();
                if (Volatile.Read(ref _stop))
                {
                    return;
                }

                try
                {
                    _run(Volatile.Read(ref _size));
                }
                catch (Exception e)
                {
                    // Not on this thread: an exception would end the process. The measuring thread throws it instead.
                    Interlocked.CompareExchange(ref _failed, e, null);
                }

                _end.SignalAndWait();
            }
        }
    }
}
