using System.Collections.Concurrent;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Models;

/// <summary>IntraOpThreads 0 on the CPU provider: one intra-op thread per session and one batch at once per core
/// (docs/configuration.md, docs/performance.md); explicit settings are taken as they are. Which threads a session has
/// is read from the kernel: ONNX Runtime's intra-op workers are threads that take the name of the thread that made the
/// session, so a session loaded on a thread named for the test leaves exactly its workers behind under that name.</summary>
public sealed class CpuThreadsTests
{
    [Fact]
    public async Task Load_DefaultOrExplicit_ThreadsPerSessionAndBatchesAtOnce_SameAnswersEitherWay()
    {
        if (Environment.ProcessorCount < 2)
        {
            Assert.Fail("needs at least 2 cores (CI has 2): with one core there is nothing to choose");
        }

        using var tmp = new TempFolder("threads");
        var logs = new LogCapture();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));
        FmaEdgeOptions Options(params (string Key, string Value)[] extra)
        {
            var o = new Dictionary<string, string?> { ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state"), ["FmaEdge:Inference:Providers"] = "cpu" };
            foreach (var (k, v) in extra)
            {
                o["FmaEdge:Inference:" + k] = v;
            }

            return FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"), overrides: o));
        }

        // Loads on a thread named "fma-infer-<role>" and counts the threads of that name once the loading thread has
        // ended (up to 5 s for it to end; what stays are the session's pool workers).
        async Task<(IClassifier Classifier, int Workers)> LoadOn(string role, FmaEdgeOptions options, int expectedWorkers)
        {
            var c = await InferenceThreads.RunAsync(role, () => new OnnxClassifierLoader(options, factory).Load(TestPaths.DemoModel, CancellationToken.None));
            var name = $"{InferenceThreads.NamePrefix}-{role}";
            name = name[..Math.Min(15, name.Length)]; // Linux keeps 15 characters of a thread name
            int Count() => InferenceThreads.Priorities().Count(t => t.Name == name);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (Count() != expectedWorkers && sw.ElapsedMilliseconds < 5_000)
            {
                await Task.Delay(50);
            }

            return (c, Count());
        }

        // ONNX Runtime makes process-wide threads on its first use, named after the thread that used it: that is not
        // counted against a session.
        using (var first = new OnnxClassifierLoader(Options(("IntraOpThreads", "1")), factory).Load(TestPaths.DemoModel, CancellationToken.None))
        {
        }

        var (byDefault, defaultWorkers) = await LoadOn("t-def", Options(), expectedWorkers: 0);
        using var _1 = byDefault;
        Assert.Equal(0, defaultWorkers); // one intra-op thread: the caller's own, no pool
        Assert.Equal(Environment.ProcessorCount, byDefault.ConcurrentBatches);
        var chosen = Assert.Single(logs.Entries, e => e.Id == 4006);
        Assert.Contains($"one intra-op thread per batch, up to {Environment.ProcessorCount} batches at once", chosen.Message, StringComparison.Ordinal);
        Assert.Contains(Path.GetFileName(TestPaths.DemoModel), chosen.Message, StringComparison.Ordinal);

        var (two, twoWorkers) = await LoadOn("t-two", Options(("IntraOpThreads", "2")), expectedWorkers: 1);
        using var _2 = two;
        Assert.Equal(1, twoWorkers); // two intra-op threads: the caller and one pool worker
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), two.ConcurrentBatches);
        Assert.Single(logs.Entries, e => e.Id == 4006); // explicit threads are not second-guessed

        var (three, _) = await LoadOn("t-three", Options(("ConcurrentBatches", "3")), expectedWorkers: 0);
        using var _3 = three;
        Assert.Equal(3, three.ConcurrentBatches);

        var input = new float[byDefault.TensorLength];
        var rng = new Random(7);
        for (var i = 0; i < input.Length; i++)
        {
            input[i] = (float)(rng.NextDouble() * 4 - 2);
        }

        var a = byDefault.Classify(input, 1)[0];
        var b = two.Classify(input, 1)[0];
        Assert.Equal(a.Path.Select(n => n.Label), b.Path.Select(n => n.Label));
        Assert.All(a.Levels.Zip(b.Levels), p => Assert.Equal(p.First.Confidence, p.Second.Confidence, 4));
    }

    [Fact]
    public void ConfigurationDoc_StatesWhatTheDefaultDoes()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "configuration.md"));
        var row = Assert.Single(doc.Split('\n'), l => l.StartsWith("| `Inference:IntraOpThreads`", StringComparison.Ordinal));

        Assert.Contains("`0` → one per batch on the CPU provider", row, StringComparison.Ordinal);
        Assert.Contains("log 4006", row, StringComparison.Ordinal);
    }
}
