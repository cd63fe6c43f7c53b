using System.Runtime.InteropServices;

namespace FmaEdge.Daemon.Hosting;

/// <summary>glibc malloc settings for a long-running daemon, applied once at the start of <c>fma-edge run</c>.
/// With glibc's defaults the daemon's RSS crept up for the whole of a 100,000-image soak (+20 MiB, ~0.25 MiB per 1000
/// images in the second half) while the managed heap and SQLite stayed flat: native fragmentation from image-sized
/// buffers allocated on many threads (one malloc arena per thread, and a dynamic mmap threshold that moves large
/// buffers into those arenas). Two arenas and a fixed 128 KiB mmap threshold (large buffers are mapped and returned on
/// free) made the same soak flat and ~35 MiB smaller (docs/reliability.md). Not thread-safe: call before the host starts.</summary>
public static partial class NativeMemory
{
    private const int MMmapThreshold = -3;
    private const int MArenaMax = -8;

    /// <summary>Arenas for the whole process.</summary>
    public const int ArenaMax = 2;

    /// <summary>Allocations at or above this size are mmapped (and unmapped on free).</summary>
    public const int MmapThresholdBytes = 128 * 1024;

    /// <summary>Applies the settings unless the operator set glibc's own variables (MALLOC_ARENA_MAX,
    /// MALLOC_MMAP_THRESHOLD_) or FMAEDGE_DEFAULT_MALLOC=1. Returns what was done, for the start-up log.</summary>
    public static string Apply()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "malloc: platform defaults";
        }

        if (Environment.GetEnvironmentVariable("FMAEDGE_DEFAULT_MALLOC") == "1")
        {
            return "malloc: glibc defaults (FMAEDGE_DEFAULT_MALLOC=1)";
        }

        if (Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null)
        {
            return "malloc: as set in the environment (MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_)";
        }

        try
        {
            var ok = Mallopt(MArenaMax, ArenaMax) == 1 & Mallopt(MMmapThreshold, MmapThresholdBytes) == 1;
            return ok ? $"malloc: {ArenaMax} arenas, mmap threshold {MmapThresholdBytes / 1024} KiB" : "malloc: glibc refused the settings; defaults kept";
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return "malloc: not glibc; defaults kept"; // e.g. musl
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);
}
