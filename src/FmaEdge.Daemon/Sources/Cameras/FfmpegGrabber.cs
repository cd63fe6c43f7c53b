using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using OpenCvSharp;

namespace FmaEdge.Daemon.Sources.Cameras;

/// <summary>A network stream (RTSP, HTTP, UDP, RTMP, SRT, TCP) or anything else ffmpeg reads, decoded by an
/// <c>ffmpeg</c> subprocess that writes raw frames to a pipe (YUV4MPEG2: a header with the size, then one raw I420 picture
/// per frame), converted to BGR here. Every read from the pipe has a deadline: past it, or on <see cref="Abort"/>, the
/// process is killed, which ends the read; <see cref="Dispose"/> kills and reaps it (no zombie, no orphan).</summary>
public sealed class FfmpegGrabber : IFrameGrabber
{
    private readonly string _uri;
    private readonly string _ffmpeg;
    private readonly string _inputArgs;
    private readonly TimeSpan _readTimeout;
    private readonly Queue<string> _stderr = new();
    private readonly Lock _lock = new();
    private readonly Timer _deadline;
    private Process? _process;
    private Stream? _stdout;
    private Mat? _yuv;
    private byte[] _header = new byte[128];
    private string? _abortReason;
    private int _width;
    private int _height;

    /// <param name="uri">What ffmpeg opens (its -i argument).</param>
    /// <param name="ffmpeg">The ffmpeg executable (name on PATH or full path).</param>
    /// <param name="inputArgs">Extra ffmpeg options placed before -i (space-separated); RTSP gets "-rtsp_transport tcp" unless given.</param>
    /// <param name="readTimeout">Longest wait for the next frame; the stream header may take <see cref="ProbeAllowance"/> longer.</param>
    public FfmpegGrabber(string uri, string ffmpeg, string inputArgs, TimeSpan readTimeout)
    {
        _uri = uri;
        _ffmpeg = ffmpeg;
        _inputArgs = inputArgs;
        _readTimeout = readTimeout;
        _deadline = new Timer(_ => Abort($"no data from ffmpeg within its deadline ({_readTimeout.TotalSeconds:F0} s per frame)"));
        Info = new CameraInfo("ffmpeg", uri);
    }

    /// <summary>Extra time allowed for the first frame: ffmpeg probes a stream (up to 5 s of it by default) before it writes the header.</summary>
    public static readonly TimeSpan ProbeAllowance = TimeSpan.FromSeconds(10);

    public CameraInfo Info { get; private set; }

    public GrabberCounters Counters { get; } = new();

    public bool WaitsForTriggers => false;

    public IReadOnlyList<string> Problems => [];

    /// <summary>The ffmpeg command line (for logs and tests).</summary>
    public IReadOnlyList<string> Arguments => BuildArguments();

    public void Open(CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(_ffmpeg)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in BuildArguments())
        {
            psi.ArgumentList.Add(a);
        }

        var p = new Process { StartInfo = psi };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (_stderr)
                {
                    _stderr.Enqueue(line);
                    if (_stderr.Count > 4)
                    {
                        _stderr.Dequeue();
                    }
                }
            }
        };
        try
        {
            p.Start();
        }
        catch (Win32Exception e)
        {
            p.Dispose();
            throw new CameraException($"cannot start {_ffmpeg} ({e.Message}); install ffmpeg or set FfmpegPath");
        }

        lock (_lock)
        {
            _process = p;
        }

        p.StandardInput.Close();
        p.BeginErrorReadLine();
        _stdout = p.StandardOutput.BaseStream;
        using var stop = cancellationToken.Register(() => Abort("stopping"));
        var line = ReadLine("stream header", _readTimeout + ProbeAllowance);
        var tokens = line.Split(' ');
        if (tokens[0] != "YUV4MPEG2")
        {
            throw new CameraException($"ffmpeg wrote no YUV4MPEG2 stream for {_uri}");
        }

        foreach (var t in tokens.Skip(1))
        {
            if (t.Length > 1 && t[0] == 'W')
            {
                _width = int.Parse(t.AsSpan(1), CultureInfo.InvariantCulture);
            }
            else if (t.Length > 1 && t[0] == 'H')
            {
                _height = int.Parse(t.AsSpan(1), CultureInfo.InvariantCulture);
            }
            else if (t.Length > 1 && t[0] == 'C' && !t.StartsWith("C420", StringComparison.Ordinal))
            {
                throw new CameraException($"unexpected YUV4MPEG2 colour space {t}");
            }
        }

        if (_width <= 0 || _height <= 0)
        {
            throw new CameraException($"ffmpeg stream header without a size: {line}");
        }

        _yuv = new Mat(_height * 3 / 2, _width, MatType.CV_8UC1);
        Info = Info with { Width = _width, Height = _height, PixelFormat = "BGR8 (decoded by ffmpeg)" };
    }

    public FrameMeta? Read(Mat frame, CancellationToken cancellationToken)
    {
        var yuv = _yuv ?? throw new InvalidOperationException("not open");
        using var stop = cancellationToken.Register(() => Abort("stopping"));
        var marker = ReadLine("frame", _readTimeout);

        if (!marker.StartsWith("FRAME", StringComparison.Ordinal))
        {
            throw new CameraException($"ffmpeg stream out of step (got '{marker}')");
        }

        unsafe
        {
            var span = new Span<byte>((void*)yuv.Data, _width * _height * 3 / 2);
            ReadExactly(span, "frame", _readTimeout);
        }

        Cv2.CvtColor(yuv, frame, ColorConversionCodes.YUV2BGR_I420);
        return new FrameMeta(DateTimeOffset.UtcNow);
    }

    public bool SoftwareTrigger() => false;

    public void Abort(string reason)
    {
        lock (_lock)
        {
            _abortReason ??= reason;
            try
            {
                _process?.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or Win32Exception)
            {
                // Already exited.
            }
        }
    }

    public void Dispose()
    {
        _deadline.Dispose();
        Process? p;
        lock (_lock)
        {
            p = _process;
            _process = null;
        }

        if (p is not null)
        {
            try
            {
                p.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or Win32Exception)
            {
            }

            // Reap it so no zombie is left; a process killed with SIGKILL is gone within milliseconds.
            p.WaitForExit(2000);
            p.Dispose();
        }

        _yuv?.Dispose();
        _yuv = null;
    }

    private List<string> BuildArguments()
    {
        var args = new List<string> { "-hide_banner", "-nostdin", "-loglevel", "error" };
        var extra = _inputArgs.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (_uri.StartsWith("rtsp", StringComparison.OrdinalIgnoreCase) && !extra.Contains("-rtsp_transport"))
        {
            args.AddRange(["-rtsp_transport", "tcp"]);
        }

        args.AddRange(extra);
        // I420 needs even sizes: an odd last column or row is cropped.
        args.AddRange(["-i", _uri, "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2",
            "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "pipe:1"]);
        return args;
    }

    /// <summary>Reads up to a newline (header or frame marker) under the deadline.</summary>
    private string ReadLine(string what, TimeSpan timeout)
    {
        var n = 0;
        Span<byte> one = stackalloc byte[1];
        while (true)
        {
            ReadExactly(one, what, timeout);
            if (one[0] == (byte)'\n')
            {
                return Encoding.ASCII.GetString(_header, 0, n);
            }

            if (n == _header.Length)
            {
                if (n >= 4096)
                {
                    throw new CameraException($"ffmpeg {what} line too long");
                }

                Array.Resize(ref _header, n * 2);
            }

            _header[n++] = one[0];
        }
    }

    private void ReadExactly(Span<byte> buffer, string what, TimeSpan timeout)
    {
        var stream = _stdout ?? throw new InvalidOperationException("not open");
        var got = 0;
        while (got < buffer.Length)
        {
            _deadline.Change(timeout, Timeout.InfiniteTimeSpan);
            int n;
            try
            {
                n = stream.Read(buffer[got..]);
            }
            catch (IOException e)
            {
                throw new CameraException(Failure($"ffmpeg pipe: {e.Message}"));
            }
            finally
            {
                _deadline.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }

            if (n == 0)
            {
                throw new CameraException(Failure($"stream ended (ffmpeg closed its output while waiting for the {what})"));
            }

            got += n;
        }
    }

    /// <summary>Why the stream ended: the abort reason, else ffmpeg's exit code and its last error lines.</summary>
    private string Failure(string fallback)
    {
        if (_abortReason is { } r)
        {
            return r;
        }

        var p = _process;
        var code = p is not null && p.WaitForExit(500) ? $" (exit {p.ExitCode})" : "";
        string[] lines;
        lock (_stderr)
        {
            lines = [.. _stderr];
        }

        return lines.Length == 0 ? fallback + code : $"{fallback}{code}: {string.Join(" | ", lines)}";
    }
}
