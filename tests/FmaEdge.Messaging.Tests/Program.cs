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
            var r = Samples.Result(pub, "cam", i);
            var c = pub.CommitResult(r, $"{pub.Session}/frame-{i}");
            Console.Out.WriteLine($"{(c.IsDuplicate ? "DUPLICATE" : "COMMITTED")} {i} {r.MessageId}");
            Console.Out.Flush();
            await Task.Delay(interval);
        }

        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
