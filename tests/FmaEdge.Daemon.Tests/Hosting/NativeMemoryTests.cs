using FmaEdge.Daemon.Hosting;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>The malloc settings <c>fma-edge run</c> applies (their effect on RSS is measured by the soak, not here).
/// Environment variables are process-wide, so these run in one collection.</summary>
[Collection(nameof(NativeMemoryTests))]
public sealed class NativeMemoryTests
{
    [Fact]
    public void Apply_OnGlibcLinux_SetsTwoArenasAndA128KiBMmapThreshold()
    {
        Assert.True(OperatingSystem.IsLinux(), "the daemon's target is Linux");
        Assert.Equal("malloc: 2 arenas, mmap threshold 128 KiB", NativeMemory.Apply());
    }

    [Theory]
    [InlineData("MALLOC_ARENA_MAX", "4", "as set in the environment")]
    [InlineData("MALLOC_MMAP_THRESHOLD_", "65536", "as set in the environment")]
    [InlineData("FMAEDGE_DEFAULT_MALLOC", "1", "glibc defaults")]
    public void Apply_OperatorChoseInTheEnvironment_LeavesMallocAlone(string variable, string value, string expected)
    {
        Environment.SetEnvironmentVariable(variable, value);
        try
        {
            Assert.Contains(expected, NativeMemory.Apply(), StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }
}
