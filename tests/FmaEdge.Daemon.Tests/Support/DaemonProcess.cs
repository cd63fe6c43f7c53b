using System.Diagnostics;
using System.Globalization;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A real <c>fma-edge</c> child process owned by one test. Disposing it kills the process if it is still running
/// (and waits for it), so a test that fails midway never leaves a daemon behind. Not thread-safe.</summary>
public sealed class DaemonProcess : IDisposable
{
    private readonly Process _process;

    private DaemonProcess(Process process) => _process = process;

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public static DaemonProcess Start(ProcessStartInfo psi)
    {
        psi.UseShellExecute = false;
        return new DaemonProcess(Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {psi.FileName}"));
    }

    /// <summary>Sends a signal with kill(1), e.g. "TERM".</summary>
    public async Task SignalAsync(string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Waits for the exit; fails the test when it takes longer than <paramref name="timeout"/>.</summary>
    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"fma-edge (pid {_process.Id}) did not exit within {timeout.TotalSeconds:F0} s");
        }
    }

    /// <summary>SIGKILL: no drain, no clean-up.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }

        _process.Dispose();
    }
}
