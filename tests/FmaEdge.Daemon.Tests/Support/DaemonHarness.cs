using System.Diagnostics;
using System.Text.Json;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Status;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A real daemon started in-process in its own folder: a folder source on <see cref="Inbox"/>, results written
/// as JSON files by <see cref="JsonFolderResultSink"/>, a real ONNX model, a real status socket.</summary>
public sealed class DaemonHarness : IAsyncDisposable
{
    private readonly IHost _host;
    private bool _stopped;

    private DaemonHarness(IHost host, string root)
    {
        _host = host;
        Root = root;
    }

    public string Root { get; }
    public string Inbox => Path.Combine(Root, "inbox");
    public string Done => Path.Combine(Inbox, "done");
    public string Failed => Path.Combine(Inbox, "failed");
    public string ModelsDir => Path.Combine(Root, "models");
    public string ResultsDir => Path.Combine(Root, "results");
    public string Socket => Path.Combine(Root, "run", "status.sock");
    public IServiceProvider Services => _host.Services;
    public JsonFolderResultSink Sink => _host.Services.GetRequiredService<IResultSink>() switch
    {
        JsonFolderResultSink j => j,
        FolderSinkWrapper w => w.Inner,
        var other => throw new InvalidOperationException($"unexpected sink {other.GetType().Name}"),
    };
    public InferencePipeline Pipeline => _host.Services.GetRequiredService<InferencePipeline>();
    public ModelManager Models => _host.Services.GetRequiredService<ModelManager>();
    public StatusService Status => _host.Services.GetRequiredService<StatusService>();
    public FmaEdge.Daemon.Sources.FolderSource Folder => _host.Services.GetRequiredService<SourceSet>().All.OfType<FmaEdge.Daemon.Sources.FolderSource>().Single();

    /// <summary>Waits for two more full rescans of the folder (the second starts only after everything the first found was
    /// handed to the pipeline), then for the pipeline to finish: whatever a rescan would take again has been taken.</summary>
    public async Task WaitForRescansAsync()
    {
        var rescans = Folder.Rescans;
        await WaitUntilAsync(() => Folder.Rescans >= rescans + 2, "two more rescans of the folder");
        await WaitUntilAsync(() => Pipeline.InFlight == 0, "the pipeline to finish what the rescans found");
    }

    /// <summary>The settings every harness uses; <paramref name="tweak"/> adjusts them.</summary>
    public static Dictionary<string, string?> Settings(string root, Action<Dictionary<string, string?>>? tweak = null)
    {
        var s = new Dictionary<string, string?>
        {
            ["FmaEdge:NodeName"] = "test-node",
            ["FmaEdge:Paths:StateDir"] = Path.Combine(root, "state"),
            ["FmaEdge:Paths:ModelsDir"] = Path.Combine(root, "models"),
            ["FmaEdge:Paths:RuntimeDir"] = Path.Combine(root, "run"),
            ["FmaEdge:Status:Socket"] = Path.Combine(root, "run", "status.sock"),
            ["FmaEdge:Status:IntervalSeconds"] = "1",
            ["FmaEdge:Status:StatsSeconds"] = "1",
            ["FmaEdge:Output:Type"] = "folder",
            ["FmaEdge:Output:Path"] = Path.Combine(root, "results"),
            ["FmaEdge:Inference:Providers"] = "cpu",
            ["FmaEdge:Inference:IntraOpThreads"] = "1",
            ["FmaEdge:Inference:MaxBatch"] = "4",
            ["FmaEdge:Inference:WarmUpRuns"] = "1",
            ["FmaEdge:Models:StableMs"] = "300",
            ["FmaEdge:Health:DiskFloorMiB"] = "1",
            ["FmaEdge:Logging:Level"] = "Warning",
            ["FmaEdge:Sources:0:Id"] = "line1",
            ["FmaEdge:Sources:0:Type"] = "folder",
            ["FmaEdge:Sources:0:Path"] = Path.Combine(root, "inbox"),
            ["FmaEdge:Sources:0:StableMs"] = "200",
            ["FmaEdge:Sources:0:RescanSeconds"] = "1",
        };
        tweak?.Invoke(s);
        return s;
    }

    /// <summary>Starts a daemon on <paramref name="root"/> (a model is placed in models/ unless one is there).</summary>
    public static async Task<DaemonHarness> StartAsync(string root, Action<Dictionary<string, string?>>? tweak = null,
        Action<IServiceCollection>? services = null)
    {
        var models = Path.Combine(root, "models");
        Directory.CreateDirectory(models);
        if (Directory.GetFiles(models, "*.onnx").Length == 0)
        {
            File.Copy(TestModels.Real, Path.Combine(models, "model-a.onnx"));
        }

        Directory.CreateDirectory(Path.Combine(root, "inbox"));
        var builder = FmaEdgeHost.CreateBuilder(overrides: Settings(root, tweak), systemConfigDir: Path.Combine(root, "no-etc"),
            configure: b => services?.Invoke(b.Services));
        var host = builder.Build();
        await host.StartAsync();
        return new DaemonHarness(host, root);
    }

    /// <summary>Stops the daemon (SIGTERM path: drain then stop).</summary>
    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _host.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_host is IAsyncDisposable ad)
        {
            await ad.DisposeAsync();
        }
        else
        {
            _host.Dispose();
        }
    }

    /// <summary>Copies real images into the inbox the way a writer should: temp name, then rename in.</summary>
    public IReadOnlyList<string> Drop(IEnumerable<string> images, string prefix = "") => DropInto(Inbox, images, prefix);

    /// <summary>Copies real images into <paramref name="inbox"/> (of any daemon, in-process or not) as <see cref="Drop"/>
    /// does; returns the names they got.</summary>
    public static IReadOnlyList<string> DropInto(string inbox, IEnumerable<string> images, string prefix = "")
    {
        var names = new List<string>();
        foreach (var img in images)
        {
            var name = prefix + Path.GetFileName(img);
            var tmp = Path.Combine(inbox, name + ".part");
            File.Copy(img, tmp);
            File.Move(tmp, Path.Combine(inbox, name));
            names.Add(name);
        }

        return names;
    }

    public IReadOnlyList<JsonElement> Results(string source = "line1") => Sink.ReadResults(source);

    public IReadOnlyList<JsonElement> Events(string? kind = null) =>
        Sink.ReadEvents().Where(e => kind is null || e.GetProperty("kind").GetString() == kind).ToList();

    /// <summary>Polls <paramref name="condition"/> until true; fails the test with <paramref name="what"/> on timeout.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what, int timeoutMs = 30_000)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > timeoutMs)
            {
                Assert.Fail($"timed out after {timeoutMs} ms waiting for: {what}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Polls <paramref name="probe"/> until it returns something; fails the test with <paramref name="what"/> on timeout.</summary>
    public static async Task<T> WaitForAsync<T>(Func<T?> probe, string what, int timeoutMs = 30_000)
        where T : class
    {
        T? found = null;
        await WaitUntilAsync(() => (found = probe()) is not null, what, timeoutMs);
        return found!;
    }
}
