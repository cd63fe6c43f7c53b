using System.Collections.Concurrent;
using FmaEdge.Core.Decoding;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace FmaEdge.Daemon.Tests.Models;

/// <summary><c>Inference:TimeBatches</c> (docs/configuration.md, log 4007): a CPU model is timed at load over batch sizes
/// 1, 2, 4, ... MaxBatch and serves with the largest within 5 % of the fastest per image; the pipeline never gathers
/// more than that.</summary>
public sealed class BatchSizeProbeTests
{
    [Fact]
    public void Choose_MeasuredFigures_LargeModelSmallBatchSmallModelFullBatch()
    {
        Assert.Equal([1, 2, 4, 8], BatchSizeProbe.Sizes(8));
        Assert.Equal([1, 2, 4, 6], BatchSizeProbe.Sizes(6));
        Assert.Equal([1], BatchSizeProbe.Sizes(1));

        // ms per image with two one-thread runs at once on 2 cores, from `fma-edge bench`'s ceiling search
        // (docs/perf/i16): ConvNeXt-T@224 is fastest at batch 1, 6-20 % slower above it; atto@128 is flat from 2 to 8.
        Assert.Equal(1, BatchSizeProbe.Choose(new Dictionary<int, double> { [1] = 31.85, [2] = 33.90, [4] = 34.72, [8] = 38.17 }));
        Assert.Equal(8, BatchSizeProbe.Choose(new Dictionary<int, double> { [1] = 1.532, [2] = 1.476, [4] = 1.484, [8] = 1.501 }));
        // Within 5 % counts; beyond it does not.
        Assert.Equal(4, BatchSizeProbe.Choose(new Dictionary<int, double> { [1] = 10, [2] = 10.2, [4] = 10.49, [8] = 10.51 }));
    }

    [Fact]
    public void Measure_CostPerImageFivefoldFromBatch4_ChoosesBatch2_RunsTheSizesTwoAtOnce()
    {
        // Model time on a fake clock (real sleeps overshoot by milliseconds on a loaded machine): 5 ms per image up
        // to batch 2, 25 ms from batch 4. Each run also waits (up to 5 s) for the other run of its pair, so a probe
        // that ran the two one after the other would be caught.
        var clock = new FakeTimeProvider();
        using var pair = new Barrier(2);
        var apart = 0;
        var sizes = new ConcurrentBag<int>();
        void Run(int size)
        {
            sizes.Add(size);
            if (!pair.SignalAndWait(TimeSpan.FromSeconds(5)))
            {
                Interlocked.Increment(ref apart);
            }

            clock.Advance(TimeSpan.FromMilliseconds(size * (size >= 4 ? 25 : 5)));
        }

        var timing = BatchSizeProbe.Measure(Run, maxBatch: 8, concurrent: 2, CancellationToken.None, clock);

        Assert.Equal(0, apart);
        Assert.Equal(2, timing.Chosen); // 1 and 2 tie at 5 ms per image: the larger
        Assert.Equal([1, 2, 4, 8], timing.MsPerImage.Keys.Order());
        Assert.Equal(5.0, timing.MsPerImage[2], 9);
        Assert.Equal(25.0, timing.MsPerImage[8], 9);
        // A round is 2 x 315 ms of model time: rounds start until 3 s have passed, so 5.
        Assert.Equal(5, timing.Rounds);
        Assert.Equal(2 * 5, sizes.Count(s => s == 8)); // every size, every round, twice at once
    }

    [Theory]
    // One run of size s costs s x msPerImage on the fake clock; a round is 1 + 2 + 4 + 8 = 15 images.
    [InlineData(20, 7)]     // 0.3 s rounds: rounds start until 3 s have passed; MaxRounds (7) stops it first
    [InlineData(270, 3)]    // 4.05 s rounds: past 3 s after the first, but MinRounds (3) start before 10 s
    [InlineData(400, 2)]    // 6 s rounds: the third would start at 12 s, past the 10 s limit
    [InlineData(2000, 1)]   // 30 s rounds (femto@128 under arm64 emulation): the first round decides
    public void Measure_SlowRounds_TheTimingStopsStartingRoundsAfter10Seconds(int msPerImage, int expectedRounds)
    {
        var clock = new FakeTimeProvider();
        void Run(int size) => clock.Advance(TimeSpan.FromMilliseconds(size * msPerImage));

        var timing = BatchSizeProbe.Measure(Run, maxBatch: 8, concurrent: 1, CancellationToken.None, clock);

        Assert.Equal(expectedRounds, timing.Rounds);
        Assert.Equal(8, timing.Chosen); // every size costs the same per image: the largest
        Assert.Equal(msPerImage, timing.MsPerImage[1], 9);
    }

    [Fact]
    public void Measure_ARunFailsOnAnotherThread_TheCallerGetsTheException()
    {
        var calls = 0;
        void Run(int size)
        {
            if (Interlocked.Increment(ref calls) == 2)
            {
                throw new InvalidOperationException("model output undecodable");
            }
        }

        var e = Assert.Throws<InvalidOperationException>(() => BatchSizeProbe.Measure(Run, maxBatch: 4, concurrent: 2, CancellationToken.None));
        Assert.Equal("model output undecodable", e.Message);
    }

    [Fact]
    public void Load_RealModelOnTheCpu_TimedAtWarmUp_Log4007_OffByConfiguration_EndedByAStop()
    {
        using var tmp = new TempFolder("timebatches");
        var logs = new LogCapture();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));
        FmaEdgeOptions Options(string timeBatches) => FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"),
            overrides: new Dictionary<string, string?>
            {
                ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state"),
                ["FmaEdge:Inference:Providers"] = "cpu",
                ["FmaEdge:Inference:MaxBatch"] = "4",
                ["FmaEdge:Inference:TimeBatches"] = timeBatches,
            }));

        using (var timed = new OnnxClassifierLoader(Options("true"), factory).Load(TestPaths.DemoModel, CancellationToken.None))
        {
            Assert.Equal(int.MaxValue, timed.BatchLimit); // known after warm-up
            timed.WarmUp(4, 1, CancellationToken.None);
            Assert.InRange(timed.BatchLimit, 1, 4);
            var entry = Assert.Single(logs.Entries, e => e.Id == 4007);
            Assert.Contains($"runs batches of up to {timed.BatchLimit} (of Inference:MaxBatch 4)", entry.Message, StringComparison.Ordinal);
            Assert.Matches(@"by batch size: 1: [0-9.]+, 2: [0-9.]+, 4: [0-9.]+ \(", entry.Message);
        }

        using (var untimed = new OnnxClassifierLoader(Options("false"), factory).Load(TestPaths.DemoModel, CancellationToken.None))
        {
            untimed.WarmUp(4, 1, CancellationToken.None);
            Assert.Equal(int.MaxValue, untimed.BatchLimit);
            Assert.Single(logs.Entries, e => e.Id == 4007);
        }

        // A stop during loading ends the timing (the warm-up runs themselves are a few batches and finish).
        using (var stopped = new OnnxClassifierLoader(Options("true"), factory).Load(TestPaths.DemoModel, CancellationToken.None))
        {
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            Assert.ThrowsAny<OperationCanceledException>(() => stopped.WarmUp(4, 1, cts.Token));
            Assert.Equal(int.MaxValue, stopped.BatchLimit);
            Assert.Single(logs.Entries, e => e.Id == 4007);
        }
    }

    [Fact]
    public void ConfigurationDoc_StatesTheDefaultTheRuleAndTheLog()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "configuration.md"));
        var row = Assert.Single(doc.Split('\n'), l => l.StartsWith("| `Inference:TimeBatches` | `true` |", StringComparison.Ordinal));

        Assert.Contains($"within {BatchSizeProbe.Tolerance * 100:0} % of the fastest", row, StringComparison.Ordinal);
        Assert.Contains("log 4007", row, StringComparison.Ordinal);
        Assert.Contains("Ignored on TensorRT and CUDA", row, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pipeline_ModelLimitedTo2_BacklogRunsInBatchesOf2NotMaxBatch()
    {
        using var tmp = new TempFolder("batchlimit");
        var sizes = new ConcurrentQueue<int>();
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Inference:ConcurrentBatches"] = "1";
            s["FmaEdge:Inference:MaxBatch"] = "8";
            s["FmaEdge:Inference:BatchFillMs"] = "10000";
            s["FmaEdge:Pipeline:DecodeWorkers"] = "1";
        }, services => services.AddSingleton<IClassifierLoader>(sp => new LimitingLoader(
            new OnnxClassifierLoader(sp.GetRequiredService<FmaEdgeOptions>(), sp.GetRequiredService<ILoggerFactory>()), limit: 2)));
        d.Pipeline.InferenceBatched += sizes.Enqueue;

        d.Drop(TestPaths.SampleImages("val", perLeaf: 2).Take(30));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 30 && d.Pipeline.InFlight == 0, "all 30 results", 60_000);

        Assert.Equal(30, sizes.Sum());
        Assert.All(sizes, n => Assert.InRange(n, 1, 2));
        Assert.True(sizes.Count(n => n == 2) >= 10, $"a backlog fills batches up to the model's limit (sizes: {string.Join(",", sizes)})");
    }

    /// <summary>A real classifier whose batch limit is the test's.</summary>
    private sealed class Limited(IClassifier inner, int limit) : WrappedClassifier(inner, run => run()), IClassifier
    {
        public new int BatchLimit => limit;
    }

    private sealed class LimitingLoader(IClassifierLoader inner, int limit) : IClassifierLoader
    {
        public IClassifier Load(string path, CancellationToken cancellationToken) => new Limited(inner.Load(path, cancellationToken), limit);
    }
}
