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
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 3 && d.Pipeline.InFlight == 0, "3 results");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(d.Socket));
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), d.Socket, null, json: true, CancellationToken.None);
        Assert.Equal(StatusCommand.Healthy, code);
        using var doc = JsonDocument.Parse(o.ToString());
        var root = doc.RootElement;
        Assert.Equal("healthy", root.GetProperty("health").GetString());
        Assert.Equal(3, root.GetProperty("counts").GetProperty("processed").GetInt64());
        Assert.Equal(0, root.GetProperty("counts").GetProperty("failed").GetInt64());
        Assert.Equal(d.Models.Current!.Classifier.Model.Sha256, root.GetProperty("model").GetProperty("sha256").GetString());
        Assert.Equal("cpu", root.GetProperty("model").GetProperty("provider").GetString());
        var src = root.GetProperty("sources")[0];
        Assert.Equal("line1", src.GetProperty("id").GetString());
        Assert.Equal("watching", src.GetProperty("state").GetString());
        Assert.Equal(3, src.GetProperty("frames").GetInt64());
        Assert.Equal(3, root.GetProperty("latency").GetProperty("total").GetProperty("samples").GetInt64());
        Assert.True(root.GetProperty("latency").GetProperty("infer").GetProperty("p50Ms").GetDouble() > 0);
        Assert.Equal("folder", root.GetProperty("output").GetProperty("kind").GetString());
        Assert.Equal(Environment.ProcessId, root.GetProperty("processId").GetInt32());

        using var table = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(CliConsole.ToWriter(table, e), d.Socket, null, json: false, CancellationToken.None));
        Assert.Contains("healthy", table.ToString(), StringComparison.Ordinal);
        Assert.Contains("line1", table.ToString(), StringComparison.Ordinal);
        Assert.Contains(d.Models.Current!.Classifier.Model.Sha256[..12], table.ToString(), StringComparison.Ordinal);
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
        await DaemonHarness.WaitUntilAsync(() => d.Events("disk-low").Count == 1, "the disk-low event", 10_000);
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
}
