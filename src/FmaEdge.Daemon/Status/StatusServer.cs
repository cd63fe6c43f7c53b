using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Hosting;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Status;

/// <summary>Serves status on a Unix domain socket (mode 0660: the service user and its group). One request per
/// connection, a line of text: <c>status</c> answers the JSON snapshot, <c>trigger &lt;source&gt;</c> triggers a camera.
/// Thread-safe; connections are served one after another (they are tiny).</summary>
public sealed class StatusServer(string socketPath, StatusService status, SourceSet sources, ILogger<StatusServer> log) : IAsyncDisposable
{
    /// <summary>JSON settings of the status protocol (camelCase).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private Socket? _listener;
    private CancellationTokenSource? _cts;
    private Task? _loop;
    private int _disposed;

    public string SocketPath { get; } = socketPath;

    /// <summary>Binds the socket (replacing a stale one from a crashed run) and starts serving.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
        if (File.Exists(SocketPath))
        {
            File.Delete(SocketPath); // a previous run's socket; nobody can be listening on it now that we hold the lock
        }

        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        }

        _listener.Listen(16);
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _loop = Task.Run(() => AcceptLoopAsync(_cts.Token), CancellationToken.None);
        Log.StatusListening(log, SocketPath);
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        // Stopped by the daemon and again by the container: the second call has nothing to do.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (_cts is not null)
        {
            await _cts.CancelAsync();
        }

        _listener?.Dispose();
        if (_loop is not null)
        {
            await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }

        _cts?.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener!.AcceptAsync(ct);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (ct.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            using (client)
            {
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromSeconds(5));
                    await ServeAsync(client, timeout.Token);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or JsonException)
                {
                    if (!ct.IsCancellationRequested)
                    {
                        Log.StatusRequestFailed(log, e.Message);
                    }
                }
                catch (Exception e)
                {
                    // A bug behind one request must not end the status socket for the rest of the run: an unobserved
                    // fault here would leave every later `fma-edge status` with an empty answer.
                    Log.StatusRequestFailed(log, e.ToString());
                }
            }
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken ct)
    {
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var request = await ReadLineAsync(stream, ct);
        byte[] reply;
        var parts = request.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        switch (parts.FirstOrDefault())
        {
            case null or "status":
                try
                {
                    reply = JsonSerializer.SerializeToUtf8Bytes(status.Snapshot(), Json);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.StatusRequestFailed(log, e.ToString());
                    reply = JsonSerializer.SerializeToUtf8Bytes(new { error = $"the daemon could not build its status: {e.GetType().Name}: {e.Message}" }, Json);
                }

                break;
            case "trigger" when parts.Length == 2:
                reply = JsonSerializer.SerializeToUtf8Bytes(new { triggered = sources.Trigger(parts[1]), source = parts[1] }, Json);
                break;
            default:
                reply = JsonSerializer.SerializeToUtf8Bytes(new { error = $"unknown request '{request}'; use 'status' or 'trigger <source>'" }, Json);
                break;
        }

        await stream.WriteAsync(reply, ct);
        await stream.WriteAsync("\n"u8.ToArray(), ct);
    }

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new byte[512];
        var n = 0;
        while (n < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(n, 1), ct);
            if (read == 0 || buffer[n] == (byte)'\n')
            {
                break;
            }

            n++;
        }

        return Encoding.UTF8.GetString(buffer, 0, n).Trim();
    }
}

/// <summary>Talks to a running daemon's status socket. Stateless and thread-safe.</summary>
public static class StatusClient
{
    /// <summary>Sends one request and returns the JSON reply; throws <see cref="SocketException"/> when nothing listens.</summary>
    public static async Task<string> RequestAsync(string socketPath, string request, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(request + "\n"), cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return (await reader.ReadToEndAsync(cancellationToken)).Trim();
    }

    /// <summary>Fetches and parses a snapshot.</summary>
    public static async Task<StatusSnapshot> GetAsync(string socketPath, CancellationToken cancellationToken) =>
        JsonSerializer.Deserialize<StatusSnapshot>(await RequestAsync(socketPath, "status", cancellationToken), StatusServer.Json)
        ?? throw new JsonException("empty status reply");
}
