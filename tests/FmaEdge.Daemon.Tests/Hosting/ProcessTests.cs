using System.Diagnostics;
using System.Text.Json;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>The real executable as a child process: what systemd would run.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task Run_KilledMidStreamThenRestarted_EveryImageReportedOnceOrMarkedDuplicate()
    {
        using var tmp = new TempFolder("kill9");
        var root = tmp.Path;
        var images = TestPaths.SampleImages("train", perLeaf: 3).Take(50).ToList();
        var (config, inbox) = await PrepareAsync(root, DaemonHarness.Settings(root), images[..40]);

        var results = new JsonFolderResultSink(Path.Combine(root, "results"));
        using (var first = Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => results.ReadResults("line1").Count >= 8, "results before the kill", 60_000);
            first.Kill(); // SIGKILL: no drain, no clean-up
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        // Where the kill fell depends on the machine (a fast one may have finished the first 40); more arrive while the
        // daemon is down, so the restarted one always has work of its own besides whatever the dead one left.
        DaemonHarness.DropInto(inbox, images[40..]);

        using (var second = Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(inbox).Length == 0, "the rest after restart", 60_000);
            await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(Path.Combine(inbox, "done")).Length == images.Count, "all files done", 10_000);
            using var status = Process.Start(new ProcessStartInfo("dotnet", [Exe, "status", "--socket", Path.Combine(root, "run", "status.sock")]) { RedirectStandardOutput = true })!;
            await status.WaitForExitAsync();
            Assert.Equal(0, status.ExitCode);
            second.Kill();
            await second.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        // Every image: exactly one result, or (when the kill fell between commit and move) one result plus a duplicate event.
        var byHash = results.ReadResults("line1").GroupBy(r => r.GetProperty("sha256").GetString()).ToList();
        Assert.Equal(images.Count, byHash.Count);
        Assert.All(byHash, g => Assert.Single(g));
        Assert.Empty(Directory.GetFiles(Path.Combine(inbox, "failed")));
    }

    [Fact]
    public void RuntimeConfig_OfTheExecutable_TurnsTheThreadPoolsIdleSpinningOff()
    {
        // docs/performance.md ("... idle thread-pool spinning off ..."): the daemon's own runtime settings, which systemd's process reads.
        using var config = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(Exe, ".runtimeconfig.json")));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }

    private static string Exe => Path.Combine(AppContext.BaseDirectory, "fma-edge.dll");

    /// <summary>A run folder for a real fma-edge process: the shipped model, an inbox holding
    /// <paramref name="images"/>, and a config file from <paramref name="settings"/>.</summary>
    internal static async Task<(string Config, string Inbox)> PrepareAsync(string root, Dictionary<string, string?> settings, IEnumerable<string> images)
    {
        Directory.CreateDirectory(Path.Combine(root, "models"));
        File.Copy(TestModels.Real, Path.Combine(root, "models", "model.onnx"));
        var inbox = Path.Combine(root, "inbox");
        Directory.CreateDirectory(inbox);
        foreach (var img in images)
        {
            File.Copy(img, Path.Combine(inbox, Path.GetFileName(img)));
        }

        var config = Path.Combine(root, "fma-edge.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(ToTree(settings)));
        return (config, inbox);
    }

    /// <summary><c>fma-edge run --config</c> as a child process, killed when the test disposes it.</summary>
    internal static DaemonProcess Start(string config) =>
        DaemonProcess.Start(new ProcessStartInfo("dotnet", [Exe, "run", "--config", config]));

    /// <summary>"FmaEdge:Sources:0:Id" style keys back into a JSON tree (arrays for numeric keys).</summary>
    private static Dictionary<string, object?> ToTree(Dictionary<string, string?> flat)
    {
        var root = new Dictionary<string, object?>();
        foreach (var (key, value) in flat)
        {
            var parts = key.Split(':');
            var node = root;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                if (!node.TryGetValue(parts[i], out var child) || child is not Dictionary<string, object?> d)
                {
                    d = [];
                    node[parts[i]] = d;
                }

                node = d;
            }

            node[parts[^1]] = value;
        }

        return Arrayify(root);
    }

    private static Dictionary<string, object?> Arrayify(Dictionary<string, object?> d)
    {
        foreach (var k in d.Keys.ToList())
        {
            if (d[k] is Dictionary<string, object?> child)
            {
                Arrayify(child);
                d[k] = child.Keys.All(x => int.TryParse(x, out _)) ? child.OrderBy(x => int.Parse(x.Key)).Select(x => x.Value).ToList() : child;
            }
        }

        return d;
    }
}
