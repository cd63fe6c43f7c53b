using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Pipeline;

/// <summary>Inference workers (docs/configuration.md, <c>Inference:ConcurrentBatches</c> and <c>Inference:BatchFillMs</c>):
/// batches run at once on the real model and still finish in arrival order; a backlog fills batches; a lone image is
/// not held back.</summary>
public sealed class ConcurrentBatchesTests
{
    [Fact]
    public async Task TwoConcurrentBatches_RealModel_BothRunAtOnce_ResultsKeepArrivalOrder()
    {
        using var tmp = new TempFolder("concurrent");
        var probe = new ConcurrencyProbe(expected: 2);
        var finished = new List<long>();
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Inference:ConcurrentBatches"] = "2";
            s["FmaEdge:Inference:MaxBatch"] = "2";
        }, services => services.AddSingleton<IClassifierLoader>(sp => new WrappingLoader(
            new OnnxClassifierLoader(sp.GetRequiredService<FmaEdgeOptions>(), sp.GetRequiredService<ILoggerFactory>()), probe.Run)));
        d.Pipeline.Finished += (work, _) =>
        {
            lock (finished)
            {
                finished.Add(work.Sequence);
            }
        };

        var names = d.Drop(TestPaths.SampleImages("val", perLeaf: 2).Take(40));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 40 && d.Pipeline.InFlight == 0, "all 40 results", 60_000);

        Assert.Equal(2, probe.MaxAtOnce); // the first batch waited (up to 10 s) for a second one to start beside it
        Assert.True(probe.Calls >= 20, $"batches of at most 2: {probe.Calls} runs for 40 images");
        lock (finished)
        {
            Assert.Equal(40, finished.Count);
            Assert.Equal(finished.Order(), finished); // handed on in the order the source gave them
        }

        var ids = d.Results().Select(r => r.GetProperty("imageId").GetString()).ToList();
        Assert.Equal(names.Order(), ids.Order());
    }

    [Fact]
    public async Task OneAtATime_ModelAllowsOne_NeverTwoRunsAtOnce()
    {
        using var tmp = new TempFolder("concurrent1");
        var probe = new ConcurrencyProbe(expected: 1);
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Inference:ConcurrentBatches"] = "1";
            s["FmaEdge:Inference:MaxBatch"] = "2";
        }, services => services.AddSingleton<IClassifierLoader>(sp => new WrappingLoader(
            new OnnxClassifierLoader(sp.GetRequiredService<FmaEdgeOptions>(), sp.GetRequiredService<ILoggerFactory>()), probe.Run)));

        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(20));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 20 && d.Pipeline.InFlight == 0, "all 20 results", 60_000);

        Assert.Equal(1, probe.MaxAtOnce);
    }

    [Fact]
    public async Task BatchFill_BacklogFillsBatches_ALoneImageIsNotHeldBack()
    {
        using var tmp = new TempFolder("batchfill");
        var sizes = new List<int>();
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Inference:ConcurrentBatches"] = "1";
            s["FmaEdge:Inference:MaxBatch"] = "8";
            s["FmaEdge:Inference:TimeBatches"] = "false"; // batches of up to 8 whatever the model's timing says
            s["FmaEdge:Inference:BatchFillMs"] = "10000"; // only the "nothing more is coming" rule can end a short batch early
            s["FmaEdge:Pipeline:DecodeWorkers"] = "1";
        });
        d.Pipeline.InferenceBatched += n =>
        {
            lock (sizes)
            {
                sizes.Add(n);
            }
        };

        // A lone image: nothing is behind it, so it runs at once although a batch could wait 10 s to fill.
        var lone = System.Diagnostics.Stopwatch.StartNew();
        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(1));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 1, "the lone image's result", 20_000);
        Assert.True(lone.Elapsed < TimeSpan.FromSeconds(8), $"a lone image waited {lone.Elapsed.TotalSeconds:F1} s for company");

        // A backlog of 40 with one decoder: without waiting, inference would take each image as it is decoded.
        d.Drop(TestPaths.SampleImages("val", perLeaf: 2).Skip(1).Take(40), "b-");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 41 && d.Pipeline.InFlight == 0, "the backlog's results", 60_000);
        lock (sizes)
        {
            var backlog = sizes.Skip(1).ToList();
            Assert.Equal(40, backlog.Sum());
            Assert.True(backlog.Count(n => n == 8) >= 4, $"a backlog runs in full batches (sizes: {string.Join(",", backlog)})");
        }
    }

    /// <summary>Counts Classify calls running at once. The first call waits (up to 10 s) until <c>expected</c> calls
    /// run together, so a pipeline that runs batches one at a time cannot reach 2 by luck of timing.</summary>
    private sealed class ConcurrencyProbe(int expected)
    {
        private int _now;
        private int _max;
        private int _calls;
        private readonly ManualResetEventSlim _reached = new(expected <= 1);

        public int MaxAtOnce => Volatile.Read(ref _max);

        public int Calls => Volatile.Read(ref _calls);

        public T Run<T>(Func<T> call)
        {
            var now = Interlocked.Increment(ref _now);
            var first = Interlocked.Increment(ref _calls) == 1;
            int seen;
            while ((seen = Volatile.Read(ref _max)) < now && Interlocked.CompareExchange(ref _max, now, seen) != seen)
            {
            }

            if (now >= expected)
            {
                _reached.Set();
            }

            try
            {
                if (first)
                {
                    _reached.Wait(TimeSpan.FromSeconds(10));
                }

                return call();
            }
            finally
            {
                Interlocked.Decrement(ref _now);
            }
        }
    }
}
