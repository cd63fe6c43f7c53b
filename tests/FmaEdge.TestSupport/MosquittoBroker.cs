using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FmaEdge.TestSupport;

/// <summary>Extra settings for a test mosquitto: TLS listener files and a password file. Immutable.</summary>
/// <param name="PasswordFile">mosquitto password file (made with mosquitto_passwd); anonymous access is then refused.</param>
/// <param name="CaFile">CA PEM for the TLS listener (with CertFile and KeyFile).</param>
/// <param name="RequireClientCertificate">Require a client certificate signed by CaFile.</param>
/// <param name="AclFile">mosquitto acl_file (topic access per user).</param>
/// <param name="Persistence">Keep sessions and queued messages across Stop/Start (on by default, so a
/// subscriber with a persistent session misses nothing during an outage, as with a real broker).</param>
public sealed record MosquittoSettings(
    string? PasswordFile = null,
    string? CaFile = null,
    string? CertFile = null,
    string? KeyFile = null,
    bool RequireClientCertificate = false,
    bool Persistence = true,
    string? AclFile = null);

/// <summary>A real mosquitto broker for tests: /usr/sbin/mosquitto on a free loopback port with a generated
/// config in its own temp folder. Stop() and Start() again on the same port simulate an outage; Kill()
/// simulates a crash. Fails with a clear message when mosquitto is not installed. Not thread-safe: drive it
/// from the test's thread.</summary>
public sealed class MosquittoBroker : IAsyncDisposable, IDisposable
{
    /// <summary>Where the Debian package puts the broker.</summary>
    public const string Executable = "/usr/sbin/mosquitto";

    private readonly TempFolder _folder = new("mosquitto");
    private readonly MosquittoSettings _settings;
    private Process? _process;

    private MosquittoBroker(MosquittoSettings settings)
    {
        _settings = settings;
        Port = FreeLoopbackPort();
        ConfigPath = _folder.File("mosquitto.conf");
        LogPath = _folder.File("mosquitto.log");
        File.WriteAllText(ConfigPath, BuildConfig());
    }

    /// <summary>Always 127.0.0.1.</summary>
    public string Host => "127.0.0.1";

    /// <summary>The port, the same across restarts.</summary>
    public int Port { get; }

    /// <summary>The generated config file.</summary>
    public string ConfigPath { get; }

    /// <summary>mosquitto's own log file (read it when a test fails).</summary>
    public string LogPath { get; }

    /// <summary>The broker's temp folder.</summary>
    public string Folder => _folder.Path;

    /// <summary>True while the process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Creates and starts a broker; throws when mosquitto is missing or does not come up.</summary>
    public static async Task<MosquittoBroker> StartNewAsync(MosquittoSettings? settings = null, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Executable))
        {
            throw new InvalidOperationException($"mosquitto is not installed ({Executable} missing): run `apt-get install -y mosquitto mosquitto-clients` (build.sh does it)");
        }

        var b = new MosquittoBroker(settings ?? new MosquittoSettings());
        try
        {
            await b.StartAsync(cancellationToken);
            return b;
        }
        catch
        {
            await b.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the process and waits until the port accepts connections (10 s at most).</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
        {
            return;
        }

        var psi = new ProcessStartInfo(Executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ConfigPath);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start mosquitto");
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (p.HasExited)
            {
                throw new InvalidOperationException($"mosquitto exited with code {p.ExitCode} at start; log:\n{ReadLog()}");
            }

            if (await CanConnectAsync(cancellationToken))
            {
                return;
            }

            await Task.Delay(25, cancellationToken);
        }

        throw new TimeoutException($"mosquitto did not listen on {Host}:{Port} within 10 s; log:\n{ReadLog()}");
    }

    /// <summary>Graceful stop (SIGTERM, as systemd does): clients see the connection close.</summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            using (var kill = Process.Start("/bin/kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }

        _process.Dispose();
        _process = null;
    }

    /// <summary>Crash (SIGKILL): no clean shutdown, no persistence written.</summary>
    public async Task KillAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _process = null;
    }

    /// <summary>The broker's log so far.</summary>
    public string ReadLog()
    {
        try
        {
            using var s = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            return r.ReadToEnd();
        }
        catch (IOException e)
        {
            return "(no log: " + e.Message + ")";
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _folder.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>A port nobody listens on right now (the OS hands out a fresh ephemeral one).</summary>
    public static int FreeLoopbackPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private async Task<bool> CanConnectAsync(CancellationToken ct)
    {
        using var c = new TcpClient();
        try
        {
            await c.ConnectAsync(IPAddress.Loopback, Port, ct);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private string BuildConfig()
    {
        var sb = new StringBuilder();
        sb.AppendLine("# generated by FmaEdge.TestSupport.MosquittoBroker");
        // Running as root, mosquitto would switch to the 'mosquitto' user and lose access to the temp folder.
        sb.AppendLine($"user {Environment.UserName}");
        sb.AppendLine("per_listener_settings false");
        sb.AppendLine($"log_dest file {LogPath}");
        sb.AppendLine("log_type error");
        sb.AppendLine("log_type warning");
        sb.AppendLine("log_type notice");
        sb.AppendLine("log_type information");
        sb.AppendLine("connection_messages true");
        sb.AppendLine("log_timestamp_format %H:%M:%S");
        if (_settings.Persistence)
        {
            sb.AppendLine("persistence true");
            sb.AppendLine($"persistence_location {_folder.Path}/");
            sb.AppendLine("autosave_interval 1");
        }

        sb.AppendLine("max_queued_messages 100000");
        sb.AppendLine("max_inflight_messages 100");
        sb.AppendLine($"listener {Port} 127.0.0.1");
        if (_settings.CaFile is not null)
        {
            sb.AppendLine($"cafile {_settings.CaFile}");
            sb.AppendLine($"certfile {_settings.CertFile}");
            sb.AppendLine($"keyfile {_settings.KeyFile}");
            if (_settings.RequireClientCertificate)
            {
                sb.AppendLine("require_certificate true");
            }
        }

        if (_settings.PasswordFile is not null)
        {
            sb.AppendLine("allow_anonymous false");
            sb.AppendLine($"password_file {_settings.PasswordFile}");
        }
        else
        {
            sb.AppendLine("allow_anonymous true");
        }

        if (_settings.AclFile is not null)
        {
            sb.AppendLine($"acl_file {_settings.AclFile}");
        }

        return sb.ToString();
    }
}
