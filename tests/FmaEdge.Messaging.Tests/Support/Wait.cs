using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;

namespace FmaEdge.Messaging.Tests.Support;

public static class Wait
{
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}");
            }

            await Task.Delay(20);
        }
    }

    public static Task ConnectedAsync(MqttPublisher p, double seconds = 10) =>
        UntilAsync(() => p.State == ConnectionState.Connected, TimeSpan.FromSeconds(seconds), $"publisher connected (last error: {p.Health.LastError})");
}
