namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Waits until a camera source's books balance: every frame it took was published or dropped and counted.</summary>
public static class FrameBooks
{
    /// <summary>Balanced and unchanged for a second, since a decoder's last buffered frames can arrive just after a
    /// balanced moment; a frame that vanished (taken, never published nor dropped) makes this time out.</summary>
    public static Task WaitBalancedAsync(DaemonHarness d, int sourceIndex, string sourceId, int timeoutMs = 30_000)
    {
        long lastFrames = -1;
        var stableSince = DateTime.UtcNow;
        return DaemonHarness.WaitUntilAsync(() =>
        {
            var s = d.Status.Snapshot().Sources[sourceIndex];
            var balanced = d.Pipeline.InFlight == 0 && s.Pending == 0 && s.Frames == d.Results(sourceId).Count + s.Dropped;
            if (!balanced || s.Frames != lastFrames)
            {
                (lastFrames, stableSince) = (s.Frames, DateTime.UtcNow);
                return false;
            }

            return DateTime.UtcNow - stableSince > TimeSpan.FromSeconds(1);
        }, $"{sourceId}: every frame published or dropped, unchanged for a second", timeoutMs);
    }
}
