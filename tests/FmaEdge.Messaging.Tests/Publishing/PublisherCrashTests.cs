using System.Diagnostics;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Publishing;

/// <summary>A real publisher process killed with SIGKILL mid-stream: the broker sends its last will, and a
/// restarted publisher on the same outbox delivers every result the dead ones had committed.</summary>
public sealed class PublisherCrashTests
{
    [Fact]
    public async Task KillMinus9_MidStream_LastWillOfflineAndRestartDeliversEveryCommittedResult()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await TestSubscriber.ConnectAsync(broker.Host, broker.Port, "fma/#");
        using var dir = new TempFolder("crash");
        var db = dir.File("outbox.db");

        // 1. Broker up: kill the child once it is online and streaming.
        var (session1, committed1) = await RunChildAndKillAsync(db, broker.Port, 60,
            s => sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/crash-node/status" && x.Payload.Contains(s, StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "child online"));
        await sub.WaitUntilAsync(m => m.Any(x => x.Topic == "fma/crash-node/status" && x.Payload.Contains("\"offline\"")), TimeSpan.FromSeconds(20), "last will");
        var willMsg = sub.On("/status").Last(x => x.Payload.Contains("\"offline\""));
        Assert.Equal("connection_lost", willMsg.Json["reason"]!.GetValue<string>());
        Assert.Equal(session1, willMsg.Json["session"]!.GetValue<string>());
        ExamplePayloads.Save("status-offline-will.json", willMsg.Payload);

        // 2. Broker down: a second child commits into the outbox only, then is killed too.
        await broker.StopAsync();
        var (_, committed2) = await RunChildAndKillAsync(db, broker.Port, 30, _ => Task.CompletedTask);

        // 3. Restart on the same outbox with the broker back: every committed result arrives, in order.
        await broker.StartAsync();
        await using var restarted = new MqttPublisher(Samples.Options(broker.Port, db, "crash-node"), "0.1.0");
        var pendingAtRestart = restarted.Health.Outbox.Depth;
        Assert.True(pendingAtRestart >= 30, $"pending at restart: {pendingAtRestart}");
        await restarted.StartAsync(CancellationToken.None);
        var committed = committed1.Concat(committed2).ToList();
        await sub.WaitUntilAsync(m => committed.All(id => m.Any(x => x.MessageId == id)), TimeSpan.FromSeconds(30),
            $"all {committed.Count} committed results ({pendingAtRestart} pending at restart)");

        var firsts = sub.On("/result").DistinctBy(r => r.MessageId).ToList();
        Assert.Equal(committed, firsts.Select(r => r.MessageId!).Where(committed.Contains)); // commit order
        Assert.All(firsts.Where(r => committed2.Contains(r.MessageId!)), r => Assert.True(r.Historical()));
        Assert.True(restarted.Health.Replayed >= 30);
        await Wait.UntilAsync(() => restarted.Health.Outbox.Depth == 0, TimeSpan.FromSeconds(10), "outbox drained");
        var status = sub.On("/status").Last().Json;
        Assert.Equal("online", status["state"]!.GetValue<string>());
        Assert.Equal(restarted.Session, status["session"]!.GetValue<string>());
    }

    private static async Task<(string Session, List<string> Committed)> RunChildAndKillAsync(string db, int port, int killAfter, Func<string, Task> beforeKill)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", typeof(Program).Assembly.Location, "publish-child", db, port.ToString(System.Globalization.CultureInfo.InvariantCulture), "crash-node", "100000", "5" })
        {
            psi.ArgumentList.Add(a);
        }

        using var child = Process.Start(psi)!;
        var committed = new List<string>();
        string? session = null;
        var stderr = child.StandardError.ReadToEndAsync();
        while (committed.Count < killAfter)
        {
            var line = await child.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60))
                ?? throw new InvalidOperationException("child ended early: " + await stderr);
            if (line.StartsWith("READY ", StringComparison.Ordinal))
            {
                session = line[6..];
            }
            else if (line.StartsWith("COMMITTED ", StringComparison.Ordinal))
            {
                committed.Add(line.Split(' ')[2]);
            }
        }

        await beforeKill(session!);
        child.Kill(); // SIGKILL: no dispose, no clean disconnect, no "offline" of its own
        await child.WaitForExitAsync();
        while (await child.StandardOutput.ReadLineAsync() is { } rest)
        {
            if (rest.StartsWith("COMMITTED ", StringComparison.Ordinal))
            {
                committed.Add(rest.Split(' ')[2]);
            }
        }

        return (session!, committed);
    }
}
