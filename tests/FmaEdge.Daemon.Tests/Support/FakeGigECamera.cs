using System.Diagnostics;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Aravis's GigE Vision camera simulator (<c>arv-fake-gv-camera-0.8</c>, Debian package aravis-tools) on the
/// loopback interface: a real GVCP/GVSP camera (512x512 Mono8 test pattern) that <see cref="Kill"/> takes away at once
/// and <see cref="Start"/> brings back. Loopback has one GVCP port (3956), so one fake camera per machine at a time:
/// the tests that use it share one collection. Disposing kills it.</summary>
public sealed class FakeGigECamera : IDisposable
{
    private readonly int _lossPerThousand;
    private Process? _process;

    public FakeGigECamera(string serial = "GV01", int lossPerThousand = 0)
    {
        Serial = serial;
        _lossPerThousand = lossPerThousand;
    }

    public string Serial { get; }

    public void Start()
    {
        Kill();
        var psi = new ProcessStartInfo("arv-fake-gv-camera-0.8") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-i", "127.0.0.1", "-s", Serial })
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
