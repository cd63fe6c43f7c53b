using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Onnx;

namespace FmaEdge.Cli.Bench;

/// <summary>The real daemon, started in-process exactly as <c>fma-edge run</c> starts it (folder source, pipeline, MQTT
/// sink with its durable outbox, the embedded broker unless another is given), measured from outside: files are renamed
/// into the watched folder and results are timed when a subscriber receives them from the broker. Two runs on one
/// daemon: a backlog (every file at once: throughput and per-stage latency) and a steady stream at a fraction of that
/// throughput during which a second model is dropped into the models folder (hot-swap stall). Single use, not
/// thread-safe.</summary>
public sealed class PipelineBenchmark : IAsyncDisposable
{
    private readonly BenchOptions _o;
    private readonly ValidatedModel _model;
    private readonly string _root;
    private readonly string _node = $"bench-{Environment.ProcessId}";
    private readonly ConcurrentDictionary<string, (long Arrival, long Finished, WorkStatus Status)> _finished = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _dropped = new(StringComparer.Ordinal);
    private IHost? _host;
    private BenchSubscriber? _subscriber;

    public PipelineBenchmark(BenchOptions options, ValidatedModel model, string root)
    {
        _o = options;
        _model = model;
        _root = root;
    }

    private string Inbox => Path.Combine(_root, "inbox");
    private string ModelsDir => Path.Combine(_root, "models");
    private string Stage => Path.Combine(_root, "stage");

    /// <summary>"embedded 127.0.0.1:port" or the external broker.</summary>
    public string BrokerDescription { get; private set; } = "";

    /// <summary>The daemon's pipeline (for its counters).</summary>
    public InferencePipeline Pipeline => _host!.Services.GetRequiredService<InferencePipeline>();

    /// <summary>Starts the daemon (returns when it is warm and watching) and the subscriber.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(ModelsDir);
        Directory.CreateDirectory(Inbox);
        var modelCopy = Path.Combine(ModelsDir, "a-" + Path.GetFileName(_model.Path));
        File.Copy(_model.Path, modelCopy, overwrite: true);
        var (host, port, embedded) = _o.Broker is { } b && BenchOptions.ParseBroker(b) is { } hp ? (hp.Host, hp.Port, false) : ("127.0.0.1", FreePort(), true);
        BrokerDescription = (embedded ? "embedded " : "") + $"{host}:{port}";
        var inv = CultureInfo.InvariantCulture;
        var settings = new Dictionary<string, string?>
        {
            ["FmaEdge:NodeName"] = _node,
            ["FmaEdge:Paths:StateDir"] = Path.Combine(_root, "state"),
            ["FmaEdge:Paths:ModelsDir"] = ModelsDir,
            ["FmaEdge:Paths:RuntimeDir"] = Path.Combine(_root, "run"),
            ["FmaEdge:Inference:Providers"] = _o.Provider,
            ["FmaEdge:Inference:IntraOpThreads"] = _o.Threads.ToString(inv),
            ["FmaEdge:Inference:MaxBatch"] = _o.MaxBatch.ToString(inv),
            ["FmaEdge:Models:Active"] = modelCopy,
            ["FmaEdge:Models:StableMs"] = "200",
            ["FmaEdge:Sources:0:Id"] = "bench",
            ["FmaEdge:Sources:0:Type"] = "folder",
            ["FmaEdge:Sources:0:Path"] = Inbox,
            ["FmaEdge:Sources:0:Completion"] = "rename",
            ["FmaEdge:Sources:0:After"] = "move",
            ["FmaEdge:Output:Type"] = "mqtt",
            ["FmaEdge:Mqtt:Host"] = host,
            ["FmaEdge:Mqtt:Port"] = port.ToString(inv),
            ["FmaEdge:Mqtt:Embedded:Enabled"] = embedded ? "true" : "false",
            ["FmaEdge:Mqtt:Embedded:BindAddress"] = "127.0.0.1",
            ["FmaEdge:Mqtt:Embedded:Port"] = port.ToString(inv),
            ["FmaEdge:Health:DiskFloorMiB"] = "1",
            // The daemon's log goes to stderr; warnings only, so the bench's own table stays readable.
            ["FmaEdge:Logging:Level"] = "Warning",
        };
        foreach (var (key, value) in _o.Overrides)
        {
            settings["FmaEdge:" + key] = value;
        }

        var builder = FmaEdgeHost.CreateBuilder(overrides: settings, systemConfigDir: Path.Combine(_root, "no-etc"));
        _host = builder.Build();
        await _host.StartAsync(ct);
        Pipeline.Finished += (work, outcome) =>
            _finished[work.ImageId] = (work.ArrivalTimestamp, Stopwatch.GetTimestamp(), outcome.Status);
        _subscriber = await BenchSubscriber.ConnectAsync(host, port, _node, ct);
    }

    /// <summary>Warm-up images per round: 16 batches' worth. The tiered JIT (with dynamic PGO: tier 0, instrumented,
    /// tier 1) promotes a method after 30 calls per step and only once no new method has been compiled for 100 ms, so one
    /// round is not enough: with 16 warm-up images in all, its background thread still spent ~1 s of CPU inside a 3.6 s
    /// timed run (atto@112, 2026-12-04), and with one round of 320 images followed by a quiet second, 2.1 s.</summary>
    public int WarmUpRoundImages => Math.Max(64, 16 * _o.MaxBatch);

    /// <summary>Warm-up rounds stop once a round (its images, then up to 15 s for the JIT to go quiet) compiled for less
    /// than this: the code the timed run needs is in its final tier.</summary>
    private static readonly TimeSpan JitQuietRound = TimeSpan.FromMilliseconds(25);

    private const int MaxWarmUpRounds = 12;

    /// <summary>The longest one round waits for the JIT to go quiet after its images are through.</summary>
    private static readonly TimeSpan JitSettleDeadline = TimeSpan.FromSeconds(15);

    /// <summary>Rounds of images through the whole pipeline until the JIT is quiet (see <see cref="WarmUpRoundImages"/>).
    /// Returns the warm-up's figures for <see cref="RunBacklogAsync"/>.</summary>
    public async Task<WarmUp> WarmUpAsync(IReadOnlyList<string> images, CancellationToken ct)
    {
        var warmStart = Stopwatch.GetTimestamp();
        var (rounds, warmImages, jitSettled) = (0, 0, false);
        while (!jitSettled && rounds < MaxWarmUpRounds)
        {
            var jitBefore = System.Runtime.JitInfo.GetCompilationTime();
            var warm = BenchImages.Stage(images, Path.Combine(Stage, $"warm{rounds}"), WarmUpRoundImages, $"w{rounds}-");
            var expected = _subscriber!.Count + warm.Count;
            foreach (var f in warm)
            {
                Drop(f);
            }

            if (!await _subscriber.WaitForAsync(expected, TimeSpan.FromSeconds(_o.TimeoutSeconds), ct))
            {
                throw new TimeoutException($"only {_subscriber.Count} of {expected} warm-up results arrived within {_o.TimeoutSeconds} s");
            }

            await WaitForJitToSettleAsync(ct);
            rounds++;
            warmImages += warm.Count;
            jitSettled = System.Runtime.JitInfo.GetCompilationTime() - jitBefore < JitQuietRound;
        }

        return new WarmUp(warmImages, rounds, Stopwatch.GetElapsedTime(warmStart).TotalSeconds, jitSettled, 0);
    }

    /// <summary>Every file dropped at once (after <see cref="WarmUpAsync"/>); throughput from the first drop to the last
    /// result received. The ratios are left at 0 for the caller, who knows the ceilings.</summary>
    public async Task<PipelineResult> RunBacklogAsync(IReadOnlyList<string> images, WarmUp warmUp, CancellationToken ct)
    {
        var staged = BenchImages.Stage(images, Stage, _o.Count, "t");
        var before = _subscriber!.Count;
        var cpu0 = ThreadCpu.Take();
        var jit0 = System.Runtime.JitInfo.GetCompilationTime();
        var first = Stopwatch.GetTimestamp();
        foreach (var f in staged)
        {
            Drop(f);
        }

        if (!await _subscriber.WaitForAsync(before + staged.Count, TimeSpan.FromSeconds(_o.TimeoutSeconds), ct))
        {
            throw new TimeoutException($"only {_subscriber.Count - before} of {staged.Count} results arrived within {_o.TimeoutSeconds} s");
        }

        var cpu = ThreadCpu.Take().Since(cpu0);
        var jitMs = (System.Runtime.JitInfo.GetCompilationTime() - jit0).TotalMilliseconds;

        var mine = Mine(staged);
        var last = mine.Max(r => r.ReceivedTimestamp);
        var seconds = Stopwatch.GetElapsedTime(first, last).TotalSeconds;
        var ips = staged.Count / seconds;
        return new PipelineResult(staged.Count, mine.Count, seconds, ips, 0, 0, Pipeline.MeanBatch, Stages(mine), null,
            cpu.CpuSeconds * 1000 / staged.Count, cpu with { Threads = cpu.Threads.Take(8).ToList() }, warmUp with { JitMsDuringRun = jitMs });
    }

    /// <summary>Waits until the JIT has compiled nothing new for a second (its tier-1 compiles of the warm-up's hot code
    /// run on a background thread after a delay), at most <see cref="JitSettleDeadline"/>.</summary>
    private static async Task WaitForJitToSettleAsync(CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var count = System.Runtime.JitInfo.GetCompiledMethodCount();
        var quietSince = start;
        while (Stopwatch.GetElapsedTime(start) < JitSettleDeadline)
        {
            await Task.Delay(100, ct);
            var now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now != count)
            {
                count = now;
                quietSince = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(quietSince) >= TimeSpan.FromSeconds(1))
            {
                return;
            }
        }
    }

    /// <summary>A steady stream at <paramref name="rate"/> images/s; a second model (the same network, another version,
    /// so another hash) is renamed into the models folder at 40 % of the stream.</summary>
    public async Task<(SwapResult Swap, IReadOnlyDictionary<string, StageStats> Steady)> RunSwapAsync(IReadOnlyList<string> images, double rate,
        CancellationToken ct)
    {
        var planned = Math.Max(10, (int)Math.Ceiling(rate * _o.SwapSeconds));
        var spare = Math.Max(20, (int)Math.Ceiling(rate * 60)); // keep streaming until the new model shows up
        var staged = BenchImages.Stage(images, Path.Combine(Stage, "swap"), planned + spare, "s");
        var modelB = WriteSwapModel();
        var shaB = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(modelB)));
        var interval = 1.0 / rate;
        var start = Stopwatch.GetTimestamp();
        long swapTs = 0;
        var swapAt = planned * 0.4 * interval;
        var sent = 0;
        while (sent < staged.Count)
        {
            var due = start + (long)(sent * interval * Stopwatch.Frequency);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, ct);
            }

            if (swapTs == 0 && Stopwatch.GetElapsedTime(start).TotalSeconds >= swapAt)
            {
                var target = Path.Combine(ModelsDir, "b-" + Path.GetFileName(_model.Path));
                File.Move(modelB, target);
                swapTs = Stopwatch.GetTimestamp();
            }

            Drop(staged[sent++]);
            if (sent >= planned && _subscriber!.Results.Any(r => r.ModelSha256 == shaB))
            {
                break;
            }
        }

        var dropped = staged.Take(sent).ToList();
        var deadline = Stopwatch.GetTimestamp() + (long)(_o.TimeoutSeconds * Stopwatch.Frequency);
        while (Mine(dropped).Count < dropped.Count && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(50, ct);
        }

        var mine = Mine(dropped).OrderBy(r => r.ReceivedTimestamp).ToList();
        var lost = dropped.Count - mine.Select(r => r.ImageId).Distinct().Count();
        var firstNew = mine.FirstOrDefault(r => r.ModelSha256 == shaB);
        var windowEnd = firstNew is null ? long.MaxValue : firstNew.ReceivedTimestamp + (2 * Stopwatch.Frequency);
        var warm = start + Stopwatch.Frequency; // the first second settles the stream's rhythm
        var before = mine.Where(r => r.ReceivedTimestamp < swapTs).ToList();
        var baselineGaps = Gaps(before.Where(r => r.ReceivedTimestamp >= warm).ToList());
        var e2e = before.Select(EndToEnd).ToList();
        var p99 = StageStats.Of(e2e).P99;
        // The gap that straddles the drop counts: the last result before it up to the first after.
        var window = mine.Where(r => r.ReceivedTimestamp <= windowEnd && r.ReceivedTimestamp >= (before.Count > 0 ? before[^1].ReceivedTimestamp : swapTs)).ToList();
        var stall = Gaps(window).DefaultIfEmpty(0).Max();
        var inWindow = window.Where(r => r.ReceivedTimestamp >= swapTs).ToList();
        var affected = inWindow.Where(r => EndToEnd(r) > p99).ToList();
        var swap = new SwapResult(dropped.Count, rate, Stopwatch.GetElapsedTime(start, swapTs).TotalSeconds,
            firstNew is null ? -1 : Stopwatch.GetElapsedTime(swapTs, firstNew.ReceivedTimestamp).TotalSeconds,
            StageStats.Of(baselineGaps), stall, affected.Count, affected.Select(EndToEnd).DefaultIfEmpty(0).Max(), p99,
            mine.Count(r => r.ModelSha256 != shaB), mine.Count(r => r.ModelSha256 == shaB), lost);
        // The steady-stream stages: images dropped before the swap and served by the first model. (Not "received before
        // the swap": on a loaded machine the first results can arrive after it, which left no samples at all.)
        var steady = mine.Where(r => _dropped[r.ImageId] < swapTs && r.ModelSha256 != shaB).ToList();
        return (swap, Stages(steady));
    }

    public async ValueTask DisposeAsync()
    {
        if (_subscriber is not null)
        {
            await _subscriber.DisposeAsync();
        }

        if (_host is not null)
        {
            await _host.StopAsync(CancellationToken.None);
            if (_host is IAsyncDisposable ad)
            {
                await ad.DisposeAsync();
            }
            else
            {
                _host.Dispose();
            }
        }
    }

    private void Drop(string staged)
    {
        var name = Path.GetFileName(staged);
        _dropped[name] = Stopwatch.GetTimestamp();
        File.Move(staged, Path.Combine(Inbox, name)); // a rename within one file system: complete on arrival
    }

    /// <summary>The first result of each of these files (QoS 1 may deliver one twice).</summary>
    private List<ReceivedResult> Mine(IReadOnlyList<string> staged)
    {
        var names = staged.Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal);
        return _subscriber!.Results.Where(r => names.Contains(r.ImageId)).GroupBy(r => r.ImageId).Select(g => g.First()).ToList();
    }

    private double EndToEnd(ReceivedResult r) => Stopwatch.GetElapsedTime(_dropped[r.ImageId], r.ReceivedTimestamp).TotalMilliseconds;

    private static List<double> Gaps(IReadOnlyList<ReceivedResult> ordered) =>
        ordered.Zip(ordered.Skip(1), (a, b) => Stopwatch.GetElapsedTime(a.ReceivedTimestamp, b.ReceivedTimestamp).TotalMilliseconds).ToList();

    /// <summary>Per-stage latency: source wait (rename to the source handing the file over: the watcher's notice plus any
    /// wait while the pipeline's bounded input is full), decode (read, hash, journal,
    /// decode), preprocess, queue wait (time in the pipeline's queues and waiting for a batch), inference (the batch's run),
    /// publish (durable commit, outbox, MQTT to the subscriber) and end to end (rename to received).</summary>
    private Dictionary<string, StageStats> Stages(IReadOnlyList<ReceivedResult> results)
    {
        var detect = new List<double>();
        var queue = new List<double>();
        var publish = new List<double>();
        foreach (var r in results)
        {
            queue.Add(Math.Max(0, r.TotalMs - r.DecodeMs - r.PreprocessMs - r.InferMs));
            if (_finished.TryGetValue(r.ImageId, out var f))
            {
                detect.Add(Stopwatch.GetElapsedTime(_dropped[r.ImageId], f.Arrival).TotalMilliseconds);
                var commitStart = f.Arrival + (long)(r.TotalMs / 1000.0 * Stopwatch.Frequency);
                publish.Add(Stopwatch.GetElapsedTime(commitStart, r.ReceivedTimestamp).TotalMilliseconds);
            }
        }

        return new Dictionary<string, StageStats>
        {
            ["source_wait"] = StageStats.Of(detect),
            ["decode"] = StageStats.Of(results.Select(r => r.DecodeMs)),
            ["preprocess"] = StageStats.Of(results.Select(r => r.PreprocessMs)),
            ["queue_wait"] = StageStats.Of(queue),
            ["inference"] = StageStats.Of(results.Select(r => r.InferMs)),
            ["publish"] = StageStats.Of(publish),
            ["end_to_end"] = StageStats.Of(results.Select(EndToEnd)),
        };
    }

    /// <summary>The benchmarked network under another version (so another hash), written beside the stage folder.</summary>
    private string WriteSwapModel()
    {
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(_model.Path));
        var m = _model.Manifest;
        ModelContract.WriteManifest(proto, m with { Model = m.Model with { Version = m.Model.Version + "-swap" } });
        var path = Path.Combine(_root, "swap-model.onnx");
        File.WriteAllBytes(path, proto.ToByteArray());
        return path;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
