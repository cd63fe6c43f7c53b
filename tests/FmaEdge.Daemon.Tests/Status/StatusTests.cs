using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Cli.Commands;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Status;

public sealed class StatusTests
{
    [Fact]
    public async Task Status_RunningHealthyDaemon_ReportsTruthfulStateAndExit0()
    {
        using var tmp = new TempFolder("status");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(3));
        File.WriteAllText(Path.Combine(d.Inbox, "notes.png"), "this is not an image");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 3 && d.Pipeline.Failed == 1 && d.Pipeline.InFlight == 0, "3 results and 1 failure");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(d.Socket));
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), d.Socket, null, json: true, CancellationToken.None);
        Assert.Equal(StatusCommand.Healthy, code);
        using var doc = JsonDocument.Parse(o.ToString());
        var root = doc.RootElement;
        Assert.Equal("healthy", root.GetProperty("health").GetString());
        Assert.Equal(3, root.GetProperty("counts").GetProperty("processed").GetInt64());
        Assert.Equal(1, root.GetProperty("counts").GetProperty("failed").GetInt64());
        Assert.Equal(1, root.GetProperty("counts").GetProperty("failedByReason").GetProperty("not-an-image").GetInt64());
        Assert.Equal(d.Models.Current!.Classifier.Model.Sha256, root.GetProperty("model").GetProperty("sha256").GetString());
        Assert.Equal("cpu", root.GetProperty("model").GetProperty("provider").GetString());
        var src = root.GetProperty("sources")[0];
        Assert.Equal("line1", src.GetProperty("id").GetString());
        Assert.Equal("watching", src.GetProperty("state").GetString());
        Assert.Equal(4, src.GetProperty("frames").GetInt64()); // every file taken, the bad one too
        Assert.Equal(3, root.GetProperty("latency").GetProperty("total").GetProperty("samples").GetInt64());
        Assert.True(root.GetProperty("latency").GetProperty("infer").GetProperty("p50Ms").GetDouble() > 0);
        Assert.Equal("folder", root.GetProperty("output").GetProperty("kind").GetString());
        Assert.Equal(Environment.ProcessId, root.GetProperty("processId").GetInt32());
        // The process section is this (test) process, measured: compare with what /proc and the GC say independently.
        var proc = root.GetProperty("process");
        var rss = proc.GetProperty("rssMiB").GetDouble();
        var procRss = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64 / 1048576.0;
        Assert.InRange(rss, procRss * 0.5, procRss * 2);
        Assert.InRange(proc.GetProperty("managedHeapMiB").GetDouble(), 0.1, rss);
        Assert.True(proc.GetProperty("sqliteMiB").GetDouble() >= 0);
        Assert.InRange(proc.GetProperty("openFiles").GetInt32(), 3, Directory.GetFiles("/proc/self/fd").Length * 2);
        Assert.True(proc.GetProperty("threads").GetInt32() > 1);
        Assert.Equal(3, proc.GetProperty("gcCollections").GetArrayLength());

        // The same snapshot goes out periodically as statistics (StatsSeconds = 1 here).
        var stats = Path.Combine(d.ResultsDir, "stats.json");
        await DaemonHarness.WaitUntilAsync(() => File.Exists(stats) && JsonDocument.Parse(File.ReadAllBytes(stats)).RootElement
            .GetProperty("counts").GetProperty("processed").GetInt64() == 3, "stats with the 3 results");

        using var table = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(CliConsole.ToWriter(table, e), d.Socket, null, json: false, CancellationToken.None));
        Assert.Contains("healthy", table.ToString(), StringComparison.Ordinal);
        Assert.Contains("line1", table.ToString(), StringComparison.Ordinal);
        Assert.Contains(d.Models.Current!.Classifier.Model.Sha256[..12], table.ToString(), StringComparison.Ordinal);
        Assert.Contains("failed by reason: not-an-image 1", table.ToString(), StringComparison.Ordinal);
        Assert.Matches(@"process: RSS \d+ MiB \(managed heap \d+ MiB", table.ToString());
    }

    [Fact]
    public async Task Status_DiskBelowFloor_DegradedExit1()
    {
        using var tmp = new TempFolder("degraded");
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s => s["FmaEdge:Health:DiskFloorMiB"] = "1000000");
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), d.Socket, null, json: true, CancellationToken.None);
        Assert.Equal(StatusCommand.Degraded, code);
        using var doc = JsonDocument.Parse(o.ToString());
        Assert.Equal("degraded", doc.RootElement.GetProperty("health").GetString());
        Assert.Contains(doc.RootElement.GetProperty("problems").EnumerateArray(), p => p.GetString()!.StartsWith("disk low", StringComparison.Ordinal));
        await DaemonHarness.WaitUntilAsync(() => d.Events("disk_low").Count == 1, "the disk-low event", 10_000);
    }

    [Fact]
    public async Task Status_NothingListening_Exit2()
    {
        using var tmp = new TempFolder("norun");
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), Path.Combine(tmp.Path, "status.sock"), null, json: false, CancellationToken.None);
        Assert.Equal(StatusCommand.NotRunning, code);
        Assert.Contains("not running", o.ToString(), StringComparison.Ordinal);

        // A stale socket file left by a crashed daemon is "not running" too.
        await using (var d = await DaemonHarness.StartAsync(tmp.Path))
        {
        }

        Assert.Equal(StatusCommand.NotRunning, await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), Path.Combine(tmp.Path, "run", "status.sock"), null, json: true, CancellationToken.None));
    }

    [Fact]
    public async Task Status_AnswerWithoutSnapshot_DegradedExit1WithWhatTheDaemonSaid()
    {
        // A listener that answers like a daemon whose snapshot failed: {"error": ...}.
        using var tmp = new TempFolder("status-error");
        var path = Path.Combine(tmp.Path, "status.sock");
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        listener.Listen(4);
        var serve = Task.Run(async () =>
        {
            for (var i = 0; i < 2; i++)
            {
                using var c = await listener.AcceptAsync();
                var buf = new byte[64];
                _ = await c.ReceiveAsync(buf);
                await c.SendAsync("{\"error\":\"the daemon could not build its status: boom\"}\n"u8.ToArray());
            }
        });

        using var o = new StringWriter();
        using var e = new StringWriter();
        Assert.Equal(StatusCommand.Degraded, await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), path, null, json: false, CancellationToken.None));
        Assert.Contains("answered without a status snapshot", o.ToString(), StringComparison.Ordinal);
        Assert.Contains("boom", o.ToString(), StringComparison.Ordinal);
        using var j = new StringWriter();
        Assert.Equal(StatusCommand.Degraded, await StatusCommand.RunAsync(CliConsole.ToWriter(j, e), path, null, json: true, CancellationToken.None));
        using var doc = JsonDocument.Parse(j.ToString());
        Assert.Equal("degraded", doc.RootElement.GetProperty("health").GetString());
        await serve.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
