using System.Diagnostics;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Cli;

/// <summary>tools/scripts/gpu-check.sh on a machine without an NVIDIA GPU (this one): it says so and exits 0.</summary>
public sealed class GpuCheckScriptTests
{
    private static bool HasNvidiaGpu => File.Exists("/dev/nvidia0") || File.Exists("/dev/nvhost-ctrl-gpu");

    [Fact]
    public async Task GpuCheck_NoGpu_SaysSoAndExitsZero()
    {
        if (HasNvidiaGpu)
        {
            return; // the GPU branch runs the real providers; it is run by hand on GPU machines (docs/jetson.md)
        }

        var psi = new ProcessStartInfo("bash", [Path.Combine(TestPaths.RepoRoot, "tools", "scripts", "gpu-check.sh")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stdout = p.StandardOutput.ReadToEndAsync(deadline.Token);
        var stderr = p.StandardError.ReadToEndAsync(deadline.Token);
        await p.WaitForExitAsync(deadline.Token); // throws (test fails by name) when the script hangs
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("no NVIDIA GPU on this machine", await stdout);
        Assert.Equal("", await stderr);
    }
}
