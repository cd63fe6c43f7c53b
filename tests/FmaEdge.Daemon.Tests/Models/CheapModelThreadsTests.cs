using System.Collections.Concurrent;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.TestSupport;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Models;

/// <summary>IntraOpThreads 0 on the CPU provider: a model cheaper than decoding its images gets one intra-op thread
/// (docs/configuration.md, docs/performance.md). The cost is timed, so the threshold is moved to the two ends here to
/// make the decision certain; the speed itself is the bench's job.</summary>
public sealed class CheapModelThreadsTests
{
    [Fact]
    public void Load_CheapOrNot_OneThreadOnlyForACheapModel_SameAnswersEitherWay()
    {
        if (Environment.ProcessorCount < 2)
        {
            Assert.Fail("needs at least 2 cores (CI has 2): with one core there is nothing to choose");
        }

        using var tmp = new TempFolder("threads");
        var options = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"),
            overrides: new Dictionary<string, string?> { ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state"), ["FmaEdge:Inference:Providers"] = "cpu" }));
        var logs = new LogCapture();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));

        using var cheap = new OnnxClassifierLoader(options, factory, cheapModelCoreMs: double.MaxValue).Load(TestPaths.DemoModel, CancellationToken.None);
        var chosen = Assert.Single(logs.Entries, e => e.Id == 4006);
        Assert.Contains("one intra-op thread", chosen.Message, StringComparison.Ordinal);
        Assert.Contains(Path.GetFileName(TestPaths.DemoModel), chosen.Message, StringComparison.Ordinal);

        using var costly = new OnnxClassifierLoader(options, factory, cheapModelCoreMs: 0).Load(TestPaths.DemoModel, CancellationToken.None);
        Assert.Single(logs.Entries, e => e.Id == 4006);

        // Explicit thread counts are never second-guessed.
        var explicitOptions = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"),
            overrides: new Dictionary<string, string?>
            {
                ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state"),
                ["FmaEdge:Inference:Providers"] = "cpu",
                ["FmaEdge:Inference:IntraOpThreads"] = "2",
            }));
        using var fixedThreads = new OnnxClassifierLoader(explicitOptions, factory, cheapModelCoreMs: double.MaxValue).Load(TestPaths.DemoModel, CancellationToken.None);
        Assert.Single(logs.Entries, e => e.Id == 4006);

        var input = new float[cheap.TensorLength];
        var rng = new Random(7);
        for (var i = 0; i < input.Length; i++)
        {
            input[i] = (float)(rng.NextDouble() * 4 - 2);
        }

        var a = cheap.Classify(input, 1)[0];
        var b = costly.Classify(input, 1)[0];
        Assert.Equal(a.Path.Select(n => n.Label), b.Path.Select(n => n.Label));
        Assert.All(a.Levels.Zip(b.Levels), p => Assert.Equal(p.First.Confidence, p.Second.Confidence, 4));
    }

    [Fact]
    public void ConfigurationDoc_StatesTheLimitTheLoaderUses()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "configuration.md"));
        var row = Assert.Single(doc.Split('\n'), l => l.StartsWith("| `Inference:IntraOpThreads`", StringComparison.Ordinal));

        Assert.Contains(FormattableString.Invariant($"a model that costs under {OnnxClassifierLoader.CheapModelCoreMs} core-ms per image"), row, StringComparison.Ordinal);
    }

    private sealed class LogCapture : ILoggerProvider
    {
        public ConcurrentQueue<(int Id, string Message)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((eventId.Id, formatter(state, exception)));
        }
    }
}
