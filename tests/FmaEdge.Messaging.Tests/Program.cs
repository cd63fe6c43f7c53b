using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;

namespace FmaEdge.Messaging.Tests;

/// <summary>Entry point used only when a test starts this assembly as a child process (the test runner itself
/// loads the assembly without calling Main): "publish-child DB PORT NODE COUNT INTERVAL_MS" runs a real
/// publisher that commits COUNT results and reports each committed message id on stdout, until killed.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 2 && args[0] == "bench-replay")
        {
            return await BenchReplayAsync(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
        }

        if (args.Length == 4 && args[0] == "bench")
        {
            return await BenchAsync(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture),
                int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture));
        }

        if (args.Length != 6 || args[0] != "publish-child")
        {
            await Console.Error.WriteLineAsync("usage: publish-child DB PORT NODE COUNT INTERVAL_MS");
            return 2;
        }

        var options = Samples.Options(int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), args[1], args[3]);
        await using var pub = new MqttPublisher(options, "0.1.0-child");
        await pub.StartAsync(CancellationToken.None); // the broker may be down: results then wait in the outbox
        Console.Out.WriteLine("READY " + pub.Session);
        Console.Out.Flush();
        var count = int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture);
        var interval = int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture);
        for (var i = 0; i < count; i++)
        {
            var r = Samples.Result("cam", i);
            var c = pub.CommitResult(r, $"{pub.Session}/frame-{i}");
            Console.Out.WriteLine($"{(c.IsDuplicate ? "DUPLICATE" : "COMMITTED")} {i} {c.MessageId}");
            Console.Out.Flush();
            await Task.Delay(interval);
        }

        await Task.Delay(Timeout.Infinite);
        return 0;
    }

    // "bench DB PORT N": commit N results as fast as possible with the broker up, then wait for the drain.
    private static async Task<int> BenchAsync(string db, int port, int n)
    {
        var options = Samples.Options(port, db, "bench");
        await using var pub = new MqttPublisher(options, "bench");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub, 30);
        var results = Enumerable.Range(0, n).Select(i => Samples.Result("cam", i)).ToList();
        var commitMs = new double[n];
        var total = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            pub.CommitResult(results[i], $"k{i}");
            commitMs[i] = sw.Elapsed.TotalMilliseconds;
        }

        var committedIn = total.Elapsed.TotalSeconds;
        await pub.WaitForDrainAsync(TimeSpan.FromMinutes(5), CancellationToken.None);
        var drainedIn = total.Elapsed.TotalSeconds;
        Array.Sort(commitMs);
        var bytes = FmaEdge.Messaging.Contract.MessageJson.Serialize(results[0]).Length;
        Console.WriteLine($"results={n} payload_bytes~{bytes} commit_p50_ms={commitMs[n / 2]:F2} commit_p99_ms={commitMs[(int)(n * 0.99)]:F2} " +
            $"commit_rate={n / committedIn:F0}/s end_to_end_rate={n / drainedIn:F0}/s acked={pub.Health.Acked}");
        return 0;
    }

    // "bench-replay N": N results committed while a real mosquitto is down, then the time to replay them.
    private static async Task<int> BenchReplayAsync(int n)
    {
        await using var broker = await FmaEdge.TestSupport.MosquittoBroker.StartNewAsync();
        await broker.StopAsync();
        using var dir = new FmaEdge.TestSupport.TempFolder("bench");
        await using var pub = new MqttPublisher(Samples.Options(broker.Port, dir.File("o.db"), "bench"), "bench");
        await pub.StartAsync(CancellationToken.None);
        for (var i = 0; i < n; i++)
        {
            pub.CommitResult(Samples.Result("cam", i));
        }

        var sw = System.Diagnostics.Stopwatch.StartNew();
        await broker.StartAsync();
        await pub.WaitForDrainAsync(TimeSpan.FromMinutes(10), CancellationToken.None);
        var h = pub.Health;
        Console.WriteLine($"replayed={h.Replayed} in {sw.Elapsed.TotalSeconds:F1} s (incl. reconnect backoff <= 0.5 s) = {h.Replayed / sw.Elapsed.TotalSeconds:F0}/s");
        return 0;
    }
}
