namespace FmaEdge.Daemon.Status;

/// <summary>The daemon process's own resources, so an operator (and the soak) can tell managed-heap growth from native
/// growth without attaching a tool: RSS, the GC heap, SQLite's allocator, open descriptors and threads.</summary>
public sealed record ProcessStatus(double RssMiB, double ManagedHeapMiB, double ManagedCommittedMiB, double SqliteMiB, int OpenFiles, int Threads,
    IReadOnlyList<int> GcCollections)
{
    private const double MiB = 1024.0 * 1024.0;

    /// <summary>Measures now. Linux figures come from /proc/self; elsewhere they are -1.</summary>
    public static ProcessStatus Measure()
    {
        var gc = GC.GetGCMemoryInfo();
        var (rssKiB, threads) = ReadProcStatus();
        return new ProcessStatus(
            Math.Round(rssKiB / 1024.0, 1),
            Math.Round(gc.HeapSizeBytes / MiB, 1),
            Math.Round(gc.TotalCommittedBytes / MiB, 1),
            Math.Round(FmaEdge.Messaging.Outbox.SqliteOutbox.MemoryUsedBytes() / MiB, 1),
            CountEntries("/proc/self/fd"),
            (int)threads,
            [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)]);
    }

    /// <summary>VmRSS (kB) and Threads from one read of /proc/self/status; -1 for what cannot be read.</summary>
    private static (long RssKiB, long Threads) ReadProcStatus()
    {
        long rss = -1, threads = -1;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = FirstNumber(line["VmRSS:".Length..]);
                }
                else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                {
                    threads = FirstNumber(line["Threads:".Length..]);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return (rss, threads);
    }

    private static long FirstNumber(string text) =>
        long.TryParse(text.Trim().Split(' ')[0], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : -1;

    private static int CountEntries(string dir)
    {
        try
        {
            return Directory.Exists(dir) ? Directory.EnumerateFileSystemEntries(dir).Count() : -1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }
}
