using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Cli.Commands;
using FmaEdge.TestSupport;
using MQTTnet;
using MQTTnet.Formatter;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>Settings and checks shared by the fault tests. Stateless and thread-safe.</summary>
internal static class FaultRig
{
    /// <summary>The daemon publishes to <paramref name="host"/>:<paramref name="port"/> (a mosquitto or a proxy in front of it),
    /// with short reconnect delays and link timeouts so faults are noticed within seconds.</summary>
    public static Action<Dictionary<string, string?>> ViaBroker(string host, int port, Action<Dictionary<string, string?>>? more = null) => s =>
    {
        s["FmaEdge:Output:Type"] = "mqtt";
        s.Remove("FmaEdge:Output:Path");
        s["FmaEdge:Mqtt:Host"] = host;
        s["FmaEdge:Mqtt:Port"] = port.ToString(CultureInfo.InvariantCulture);
        s["FmaEdge:Mqtt:Embedded:Enabled"] = "false";
        s["FmaEdge:Mqtt:ReconnectMinSeconds"] = "0.5";
        s["FmaEdge:Mqtt:ReconnectMaxSeconds"] = "1";
        s["FmaEdge:Mqtt:KeepAliveSeconds"] = "2";
        s["FmaEdge:Mqtt:ConnectTimeoutSeconds"] = "2";
        s["FmaEdge:Mqtt:PublishTimeoutSeconds"] = "3";
        more?.Invoke(s);
    };

    /// <summary>What <c>fma-edge status --json</c> prints and its exit code, through the real CLI code and the status socket.</summary>
    public static async Task<(int Code, JsonElement Json)> StatusAsync(string socket)
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = await StatusCommand.RunAsync(CliConsole.ToWriter(o, e), socket, null, json: true, CancellationToken.None);
        using var doc = JsonDocument.Parse(o.ToString());
        return (code, doc.RootElement.Clone());
    }

    /// <summary>Polls the status socket until <paramref name="condition"/> holds; returns that snapshot.</summary>
    public static async Task<(int Code, JsonElement Json)> WaitForStatusAsync(string socket, Func<int, JsonElement, bool> condition, string what,
        int timeoutMs = 30_000)
    {
        var sw = Stopwatch.StartNew();
        (int Code, JsonElement Json) last = default;
        while (sw.ElapsedMilliseconds < timeoutMs)
        {
            last = await StatusAsync(socket);
            if (condition(last.Code, last.Json))
            {
                return last;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"timed out after {timeoutMs} ms waiting for status: {what}; last (exit {last.Code}): {last.Json}");
        return last;
    }

    /// <summary>The problems listed by a status snapshot, joined for assertions.</summary>
    public static string Problems(JsonElement status) =>
        string.Join(" | ", status.GetProperty("problems").EnumerateArray().Select(p => p.GetString()));

    /// <summary>Checks the floor's accounting: every image (by file name) has exactly one result message id; every extra
    /// copy of a message (at-least-once) is marked historical or is a broker re-delivery (MQTT DUP); no result names an
    /// image that was not dropped.</summary>
    public static void AssertEachImageOnce(IReadOnlyCollection<FloorMessage> results, IReadOnlyCollection<string> imageNames)
    {
        var byImage = results.GroupBy(r => r.Json.GetProperty("image").GetProperty("id").GetString()!).ToDictionary(g => g.Key, g => g.ToList());
        var missing = imageNames.Where(n => !byImage.ContainsKey(n)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} image(s) never reported: {string.Join(", ", missing.Take(5))}");
        Assert.Empty(byImage.Keys.Except(imageNames));
        foreach (var (name, copies) in byImage)
        {
            var ids = copies.Select(c => c.Json.GetProperty("message_id").GetString()).Distinct().ToList();
            Assert.True(ids.Count == 1, $"{name} reported under {ids.Count} message ids (a new result for an image already published)");
            Assert.All(copies, c => Assert.False(c.Json.TryGetProperty("duplicate", out var d) && d.GetBoolean()));
            var unmarked = copies.Count(c => !c.Json.GetProperty("historical").GetBoolean() && !c.Dup);
            Assert.True(unmarked <= 1, $"{name}: {unmarked} unmarked copies of one message");
        }
    }
}

/// <summary>One message the floor received.</summary>
internal sealed record FloorMessage(string Topic, JsonElement Json, bool Dup, bool Retain, DateTime AtUtc)
{
    public string? Kind => Json.TryGetProperty("kind", out var k) ? k.GetString() : null;
    public string? State => Json.TryGetProperty("state", out var s) ? s.GetString() : null;
}

/// <summary>The factory floor: an MQTT 3.1.1 subscriber with a persistent session on fma/test-node/#, connected straight
/// to mosquitto, that reconnects on its own (every 100 ms) after a broker restart, so it misses nothing the broker
/// accepted. Thread-safe for reading.</summary>
internal sealed class FloorSubscriber : IAsyncDisposable
{
    private readonly IMqttClient _client = new MqttClientFactory().CreateMqttClient();
    private readonly MqttClientOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private FloorSubscriber(MosquittoBroker broker)
    {
        _options = new MqttClientOptionsBuilder().WithTcpServer(broker.Host, broker.Port).WithProtocolVersion(MqttProtocolVersion.V311)
            .WithClientId("floor-" + Guid.NewGuid().ToString("N")[..8]).WithCleanSession(false).WithKeepAlivePeriod(TimeSpan.FromSeconds(5)).Build();
        _client.ApplicationMessageReceivedAsync += e =>
        {
            var m = e.ApplicationMessage;
            var payload = Encoding.UTF8.GetString(m.Payload);
            Messages.Enqueue(new FloorMessage(m.Topic, JsonDocument.Parse(payload).RootElement.Clone(), m.Dup, m.Retain, DateTime.UtcNow));
            return Task.CompletedTask;
        };
        _loop = Task.Run(ReconnectLoopAsync);
    }

    public ConcurrentQueue<FloorMessage> Messages { get; } = new();

    public List<FloorMessage> Results => Messages.Where(m => m.Topic.EndsWith("/result", StringComparison.Ordinal)).ToList();

    public List<FloorMessage> Events(string? kind = null) =>
        Messages.Where(m => m.Topic.EndsWith("/events", StringComparison.Ordinal) && (kind is null || m.Kind == kind)).ToList();

    public List<FloorMessage> Statuses => Messages.Where(m => m.Topic.EndsWith("/status", StringComparison.Ordinal)).ToList();

    /// <summary>Distinct images (by file name or frame id) with a result so far.</summary>
    public int DistinctImages => Results.Select(r => r.Json.GetProperty("image").GetProperty("id").GetString()).Distinct().Count();

    public static async Task<FloorSubscriber> ConnectAsync(MosquittoBroker broker)
    {
        var s = new FloorSubscriber(broker);
        await Support.DaemonHarness.WaitUntilAsync(() => s._client.IsConnected && s.Subscribed, "the floor subscriber connected", 10_000);
        return s;
    }

    private volatile bool _subscribed;

    private bool Subscribed => _subscribed;

    private async Task ReconnectLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            if (!_client.IsConnected)
            {
                try
                {
                    var r = await _client.ConnectAsync(_options, _stop.Token);
                    if (!r.IsSessionPresent || !_subscribed)
                    {
                        await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                            .WithTopicFilter("fma/test-node/#", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build(), _stop.Token);
                        _subscribed = true;
                    }
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    // Broker down: try again shortly.
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync();
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException)
            {
            }
        }

        _client.Dispose();
        _stop.Dispose();
    }
}

/// <summary>A TCP proxy between the daemon and mosquitto that can cut the link the way a network partition does: it stops
/// forwarding in both directions without closing anything (no RST, no FIN: the peers only notice through their own
/// timeouts), holds new connections silently, and can heal or close everything. Thread-safe.</summary>
internal sealed class PartitionProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _sockets = [];
    private readonly Task _accept;
    private volatile TaskCompletionSource _open = NewGate(open: true);

    public PartitionProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accept = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>Connections accepted so far (the daemon's connect attempts).</summary>
    public int Accepted => _accepted;

    private int _accepted;

    /// <summary>From now on no byte crosses in either direction; sockets stay open.</summary>
    public void Partition()
    {
        if (_open.Task.IsCompleted)
        {
            _open = NewGate(open: false);
        }
    }

    /// <summary>Forwarding resumes, for old connections (whatever the peers still send) and new ones.</summary>
    public void Heal() => _open.TrySetResult();

    /// <summary>Ends the partition the other way: every connection open now is reset (as a NAT or firewall that dropped
    /// its state would), then new connections go through.</summary>
    public void HealByClosing()
    {
        foreach (var s in _sockets)
        {
            try
            {
                s.Client?.LingerState = new LingerOption(true, 0); // RST, not FIN
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }

            s.Dispose();
        }

        _sockets.Clear();
        Heal();
    }

    private static TaskCompletionSource NewGate(bool open)
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (open)
        {
            t.SetResult();
        }

        return t;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            Interlocked.Increment(ref _accepted);
            _sockets.Add(client);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        // A partitioned network drops the SYN too: hold the new connection without reaching the broker until healed.
        await _open.Task.WaitAsync(_stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        var upstream = new TcpClient();
        _sockets.Add(upstream);
        try
        {
            await upstream.ConnectAsync(_targetHost, _targetPort, _stop.Token);
        }
        catch (Exception)
        {
            client.Dispose();
            return;
        }

        try
        {
            var a = PumpAsync(client.GetStream(), upstream.GetStream());
            var b = PumpAsync(upstream.GetStream(), client.GetStream());
            await Task.WhenAny(a, b);
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            // Closed while it was held.
        }

        client.Dispose();
        upstream.Dispose();
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                // Not reading while partitioned leaves the bytes in the kernel, as TCP retransmission would.
                await _open.Task.WaitAsync(_stop.Token);
                var n = await from.ReadAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    return;
                }

                await _open.Task.WaitAsync(_stop.Token);
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            }
        }
        catch (Exception)
        {
            // Either side closed: the caller closes both.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var s in _sockets)
        {
            s.Dispose();
        }

        await _accept.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }
}

/// <summary>A small tmpfs mounted for one test, to fill a file system for real (ENOSPC from the kernel, not a fake).
/// Needs root or CAP_SYS_ADMIN (CI and this machine run as root); without it the test fails and says so, because a
/// skipped disk-full test would claim a guarantee nobody checked. Not thread-safe.</summary>
internal sealed class SmallTmpfs : IDisposable
{
    private readonly string _filler;

    private SmallTmpfs(string path)
    {
        Path = path;
        _filler = System.IO.Path.Combine(path, ".filler");
    }

    public string Path { get; }

    public static SmallTmpfs Mount(string path, int sizeMiB)
    {
        Directory.CreateDirectory(path);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={sizeMiB}m", "tmpfs", path);
        if (code != 0)
        {
            throw new InvalidOperationException(
                $"cannot mount a {sizeMiB} MiB tmpfs on {path} (exit {code}: {output.Trim()}). The disk-full fault tests fill a real " +
                "file system and need root or CAP_SYS_ADMIN (run `./build.sh test` as root, as CI does); they are not skipped, " +
                "because a skipped test would report a guarantee nobody checked.");
        }

        return new SmallTmpfs(path);
    }

    /// <summary>Writes a filler file until the kernel answers ENOSPC; returns the bytes written.</summary>
    public long Fill()
    {
        long written = 0;
        var chunk = new byte[64 * 1024];
        using var f = new FileStream(_filler, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        try
        {
            while (true)
            {
                f.Write(chunk);
                f.Flush(flushToDisk: true);
                written += chunk.Length;
            }
        }
        catch (IOException)
        {
            // ENOSPC: full.
        }

        // Small writes may still fit in the last partial page: fill byte-wise to the end.
        try
        {
            while (true)
            {
                f.WriteByte(0);
                f.Flush(flushToDisk: true);
                written++;
            }
        }
        catch (IOException)
        {
        }

        return written;
    }

    /// <summary>Gives the space back.</summary>
    public void Free() => File.Delete(_filler);

    public void Dispose()
    {
        Run("umount", "-l", Path);
    }

    private static (int Code, string Output) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

/// <summary>A camera on a named pipe (FIFO) streaming multipart MJPEG built from real dataset images, which OpenCV's
/// built-in FFmpeg reads like a live camera. (An MJPEG-over-HTTP camera was tried first: the x64 OpenCvSharp runtime's
/// FFmpeg refuses http:// at once, see docs/reliability.md.) Like a camera server it serves one reader after another
/// (when a reader goes, it waits for the next); it can pause (the pipe stays open, no more frames: a camera that hangs),
/// vanish (the writer closes) and come back (the writer opens again). The writer never blocks: it opens and writes with
/// O_NONBLOCK and polls (a blocking open waits for a reader forever, and a blocking write into a pipe nobody drains
/// cannot be cancelled; either once hung the test host). Disposing it also releases any reader still blocked opening the
/// pipe, so no capture thread outlives the test. Thread-safe.</summary>
internal sealed partial class FifoCamera : IAsyncDisposable
{
    private const int OWronly = 0x1;
    private const int ONonblock = 0x800; // Linux, x64 and arm64
    private const int Enxio = 6;
    private const int Eagain = 11;
    private const int Eintr = 4;

    private readonly byte[][] _frames;
    private readonly int _fps;
    private CancellationTokenSource? _cts;
    private Task? _writer;
    private volatile bool _paused;
    private long _sent;

    public FifoCamera(string path, IEnumerable<string> images, int fps = 10, int size = 160)
    {
        Path = path;
        _fps = fps;
        _frames = images.Select(p =>
        {
            using var src = OpenCvSharp.Cv2.ImRead(p, OpenCvSharp.ImreadModes.Color);
            using var frame = src.Resize(new OpenCvSharp.Size(size, size));
            return frame.ImEncode(".jpg");
        }).ToArray();
        using var mk = Process.Start("mkfifo", [path]);
        mk.WaitForExit();
        Assert.Equal(0, mk.ExitCode);
    }

    public string Path { get; }

    /// <summary>Frames written so far.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Starts the camera: waits (polling) for a reader, then streams until paused or vanished; a reader that
    /// goes away is followed by the next one.</summary>
    public void Start()
    {
        _paused = false;
        _cts = new CancellationTokenSource();
        var ct = _cts.Token;
        _writer = Task.Factory.StartNew(() => Serve(ct), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void Serve(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var fd = WaitForReader(ct);
            if (fd < 0)
            {
                return;
            }

            try
            {
                StreamTo(fd, ct);
            }
            finally
            {
                _ = Close(fd);
            }
        }
    }

    /// <summary>Opens the pipe for writing once a reader has it open; -1 when cancelled.</summary>
    private int WaitForReader(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var fd = Open(Path, OWronly | ONonblock);
            if (fd >= 0)
            {
                return fd;
            }

            var errno = Marshal.GetLastPInvokeError();
            Assert.True(errno is Enxio or Eintr, $"open({Path}) for writing failed: errno {errno}");
            Thread.Sleep(20); // ENXIO: no reader yet
        }

        return -1;
    }

    /// <summary>Streams frames until cancelled or the reader goes away (EPIPE).</summary>
    private void StreamTo(int fd, CancellationToken ct)
    {
        var i = 0;
        while (!ct.IsCancellationRequested)
        {
            if (!_paused)
            {
                var jpg = _frames[i++ % _frames.Length];
                if (!WriteAll(fd, Encoding.ASCII.GetBytes($"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {jpg.Length}\r\n\r\n"), ct)
                    || !WriteAll(fd, jpg, ct) || !WriteAll(fd, "\r\n"u8.ToArray(), ct))
                {
                    return;
                }

                Interlocked.Increment(ref _sent);
            }

            Thread.Sleep(1000 / _fps);
        }
    }

    /// <summary>Lets every reader blocked in open() on the pipe through (a writer appears and closes at once, so they read
    /// end of stream) until no reader has the pipe open, for at most <paramref name="timeout"/>. A capture blocked in
    /// open would otherwise keep its thread, and OpenCV's process-wide FFmpeg open lock, for the rest of the test run.</summary>
    public async Task ReleaseBlockedReadersAsync(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            var fd = Open(Path, OWronly | ONonblock);
            if (fd < 0)
            {
                return; // ENXIO: no reader left (or the pipe is gone)
            }

            _ = Close(fd);
            await Task.Delay(20);
        }
    }

    /// <summary>Writes everything, waiting while the pipe is full; false when cancelled or the reader is gone.</summary>
    private static unsafe bool WriteAll(int fd, byte[] data, CancellationToken ct)
    {
        var done = 0;
        while (done < data.Length)
        {
            if (ct.IsCancellationRequested)
            {
                return false;
            }

            nint n;
            fixed (byte* p = &data[done])
            {
                n = Write(fd, p, data.Length - done);
            }

            if (n > 0)
            {
                done += (int)n;
                continue;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno is Eagain or Eintr)
            {
                Thread.Sleep(5); // the reader is not draining (a slow or stalled consumer): wait, stay cancellable
                continue;
            }

            return false; // EPIPE and the like
        }

        return true;
    }

    /// <summary>Stops sending frames; the pipe stays open.</summary>
    public void Pause() => _paused = true;

    /// <summary>The camera disappears: its side of the pipe closes (the reader sees end of stream).</summary>
    public async Task VanishAsync()
    {
        if (_cts is not null)
        {
            await _cts.CancelAsync();
        }

        if (_writer is not null)
        {
            // Nothing in the writer blocks, so it ends within a sleep period.
            await _writer.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await VanishAsync();
        await ReleaseBlockedReadersAsync(TimeSpan.FromSeconds(10));
        _cts?.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
