using System.Collections.Concurrent;
using System.Diagnostics;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Sources;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FmaEdge.Daemon.Pipeline;

/// <summary>Runs a list of image files once through the daemon's own pipeline (same decoding, preprocessing, batching
/// and decoding) into memory, without MQTT or journal: <c>fma-edge classify</c>. Not thread-safe; one run per instance.</summary>
public sealed class OneShotClassifier(FmaEdgeOptions options, ILoggerFactory? loggers = null)
{
    private readonly ILoggerFactory _loggers = loggers ?? NullLoggerFactory.Instance;

    /// <summary>Classifies <paramref name="files"/> in order; every file gets exactly one outcome. Throws
    /// <see cref="InvalidOperationException"/> when no model can be loaded.</summary>
    public async Task<OneShotReport> RunAsync(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        await using var sink = new MemoryResultSink();
        var session = new DaemonSession();
        var loader = new OnnxClassifierLoader(options, _loggers);
        await using var models = new ModelManager(options, loader, sink, _loggers.CreateLogger<ModelManager>());
        await models.LoadInitialAsync(cancellationToken);
        using var pipeline = new InferencePipeline(options, models, sink, _loggers.CreateLogger<InferencePipeline>(), session);
        var outcomes = new ConcurrentDictionary<long, (ImageWork Work, WorkOutcome Outcome)>();
        pipeline.Finished += (w, o) => outcomes[w.Sequence] = (w, o);
        var completion = new NoopCompletion();
        pipeline.Start();
        var seq = 0L;
        foreach (var f in files)
        {
            await pipeline.WriteAsync(new ImageWork
            {
                SourceId = "cli",
                Sequence = ++seq,
                ImageId = Path.GetFileName(f),
                FilePath = Path.GetFullPath(f),
                CapturedUtc = DateTimeOffset.UtcNow,
                ArrivalTimestamp = Stopwatch.GetTimestamp(),
                Completion = completion,
            }, cancellationToken);
        }

        await pipeline.DrainAsync(cancellationToken);
        var results = sink.ResultsById;
        var items = outcomes.OrderBy(kv => kv.Key).Select(kv => new OneShotItem(kv.Value.Work.FilePath!, kv.Value.Outcome,
            kv.Value.Outcome.MessageId is { } id ? results.GetValueOrDefault(id) : null)).ToList();
        var m = models.Current!.Classifier;
        return new OneShotReport(m.Model.Manifest.Model.Id, m.Model.Sha256, m.ExecutionProvider, m.ProviderNotes, items,
            new Dictionary<string, LatencySummary>
            {
                ["decode"] = pipeline.DecodeLatency.Summarise(),
                ["preprocess"] = pipeline.PreprocessLatency.Summarise(),
                ["infer"] = pipeline.InferLatency.Summarise(),
                ["total"] = pipeline.TotalLatency.Summarise(),
            });
    }

    private sealed class NoopCompletion : IWorkCompletion
    {
        public ValueTask CompleteAsync(ImageWork work, WorkOutcome outcome, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}

/// <summary>What a one-shot run produced: the model used and one item per input file, in input order. Immutable.</summary>
public sealed record OneShotReport(string ModelId, string ModelSha256, string ExecutionProvider, IReadOnlyList<string> ProviderNotes,
    IReadOnlyList<OneShotItem> Items, IReadOnlyDictionary<string, LatencySummary> Latency);

/// <summary>One input file's outcome and, when classified, its result.</summary>
public sealed record OneShotItem(string Path, WorkOutcome Outcome, ImageResult? Result);
