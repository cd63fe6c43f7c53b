using System.Diagnostics;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Aravis's GigE Vision camera simulator (<c>arv-fake-gv-camera-0.8</c>, Debian package aravis-tools) on the
/// loopback interface: a real GVCP/GVSP camera (512x512 Mono8 test pattern) that <see cref="Kill"/> takes away at once
/// and <see cref="Start"/> brings back. Loopback has one GVCP port (3956), so one fake camera per machine at a time:
/// the tests that use it share one collection. Disposing kills it.</summary>
public sealed class FakeGigECamera : IDisposable
{
    private readonly int _lossPerThousand;
    private Process? _process;

    /// <summary>A simulator with its own serial number by default, so a daemon left from an earlier test (a capture
    /// thread still returning from a native call) can never find, and take control of, this test's camera.</summary>
    public FakeGigECamera(string? serial = null, int lossPerThousand = 0)
    {
        Serial = serial ?? "GV" + Guid.NewGuid().ToString("N")[..6];
        _lossPerThousand = lossPerThousand;
    }

    public string Serial { get; }

    /// <summary>Starts the simulator on <paramref name="address"/> (an address of an interface: 127.0.0.1, or another
    /// loopback address added to lo with <see cref="LoopbackAlias"/>).</summary>
    public void Start(string address = "127.0.0.1")
    {
        Kill();
        var psi = new ProcessStartInfo("arv-fake-gv-camera-0.8") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-i", address, "-s", Serial })
        {
            psi.ArgumentList.Add(a);
        }

        if (_lossPerThousand > 0)
        {
            psi.ArgumentList.Add("-r");
            psi.ArgumentList.Add(_lossPerThousand.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("arv-fake-gv-camera-0.8 did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Kills the simulator (a camera losing power) and reaps it.</summary>
    public void Kill()
    {
        if (_process is { } p)
        {
            try
            {
                p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }

            p.WaitForExit(5000);
            p.Dispose();
            _process = null;
        }
    }

    public void Dispose() => Kill();
}

/// <summary>A second loopback address (e.g. 127.0.0.2) on lo for the test's lifetime, so the camera simulator can come back
/// "with another IP" and be found by discovery there. Needs root (CI runs as root); removed again only if it added it.</summary>
public sealed class LoopbackAlias : IDisposable
{
    private readonly bool _added;

    public LoopbackAlias(string address)
    {
        Address = address;
        var show = Run("ip", "-o", "addr", "show", "dev", "lo");
        if (show.Contains($" {address}/", StringComparison.Ordinal))
        {
            return;
        }

        var add = Run("ip", "addr", "add", $"{address}/8", "dev", "lo");
        if (!Run("ip", "-o", "addr", "show", "dev", "lo").Contains($" {address}/", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"could not add {address} to lo (needs root, as CI runs): {add}");
        }

        _added = true;
    }

    public string Address { get; }

    public void Dispose()
    {
        if (_added)
        {
            Run("ip", "addr", "del", $"{Address}/8", "dev", "lo");
        }
    }

    private static string Run(string exe, params string[] args)
    {
        var r = ExternalProcess.RunAsync(exe, args, TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        return r.StdOut + r.StdErr;
    }
}
