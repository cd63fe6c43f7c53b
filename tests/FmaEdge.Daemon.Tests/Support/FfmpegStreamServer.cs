using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FmaEdge.TestSupport;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>A real network camera on loopback: an ffmpeg process serving a short video made from real defect images, in
/// a loop at its frame rate (HTTP with <c>-listen 1</c>, or MPEG-TS over UDP). <see cref="Kill"/> takes it away mid-stream
/// and <see cref="Start"/> brings it back on the same port. Disposing kills it.</summary>
public sealed class FfmpegStreamServer : IDisposable
{
    private readonly string _video;
    private readonly string _protocol;
    private readonly List<string> _errors = [];
    private Process? _process;

    private FfmpegStreamServer(string video, string protocol, int port)
    {
        _video = video;
        _protocol = protocol;
        Port = port;
    }

    public int Port { get; }

    /// <summary>What the server wrote to stderr (errors only), for failure messages.</summary>
    public string Errors
    {
        get
        {
            lock (_errors)
            {
                return string.Join(" | ", _errors.TakeLast(5));
            }
        }
    }

    /// <summary>The URL a client opens.</summary>
    public string Url => _protocol == "udp" ? $"udp://127.0.0.1:{Port}" : $"http://127.0.0.1:{Port}/live.ts";

    /// <summary>A server for "http" or "udp" on a free port, serving <paramref name="frames"/> real images (size x size) at
    /// <paramref name="fps"/>. Not started.</summary>
    public static FfmpegStreamServer Create(string folder, string protocol, int frames = 30, int size = 128, int fps = 10)
    {
        var video = Path.Combine(folder, "line.avi");
        using (var writer = new VideoWriter(video, FourCC.MJPG, fps, new Size(size, size)))
        {
            Assert.True(writer.IsOpened(), "OpenCV can write MJPG video");
            foreach (var img in TestPaths.SampleImages("val", perLeaf: 2).Take(frames))
            {
                using var src = Cv2.ImRead(img);
                using var frame = src.Resize(new Size(size, size));
                writer.Write(frame);
            }
        }

        return new FfmpegStreamServer(video, protocol, FreePort(protocol));
    }

    public void Start()
    {
        Kill();
        var psi = new ProcessStartInfo("ffmpeg") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardInput = true };
        string[] args = ["-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", _video, "-c:v", "mpeg2video", "-q:v", "3", "-f", "mpegts"];
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (_protocol == "udp")
        {
            psi.ArgumentList.Add($"udp://127.0.0.1:{Port}?pkt_size=1316");
        }
        else
        {
            psi.ArgumentList.Add("-listen");
            psi.ArgumentList.Add("1");
            psi.ArgumentList.Add(Url);
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("ffmpeg did not start");
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (_errors)
                {
                    _errors.Add(line);
                }
            }
        };
        _process.BeginErrorReadLine();
    }

    /// <summary>Kills the server at once (as a camera losing power would vanish) and reaps it.</summary>
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

    /// <summary>Processes that are children of this test host, still running or unreaped (zombies), whose command line
    /// contains <paramref name="marker"/> or whose name is ffmpeg when zombie (a zombie has no command line).</summary>
    public static IReadOnlyList<string> OurFfmpegChildren(string marker)
    {
        var me = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var close = stat.LastIndexOf(')');
                var fields = stat[(close + 2)..].Split(' ');
                var name = stat[(stat.IndexOf('(') + 1)..close];
                if (fields[1] != me)
                {
                    continue;
                }

                var cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmd.Contains(marker, StringComparison.Ordinal) || (fields[0] == "Z" && name == "ffmpeg"))
                {
                    found.Add($"{Path.GetFileName(dir)} {fields[0]} {name} {cmd}");
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    private static int FreePort(string protocol)
    {
        if (protocol == "udp")
        {
            using var u = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            return ((IPEndPoint)u.Client.LocalEndPoint!).Port;
        }

        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
