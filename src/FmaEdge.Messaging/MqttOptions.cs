using System.Net;

namespace FmaEdge.Messaging;

/// <summary>Every MQTT setting of the daemon, with defaults for a single box (embedded broker on loopback).
/// Bound from the "Mqtt" configuration section; call <see cref="Validate"/> at start-up. Mutable until handed
/// to <see cref="Publishing.MqttPublisher"/>, which takes a validated copy; not thread-safe while being edited.</summary>
public sealed class MqttOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Mqtt";

    /// <summary>Broker host name or IP address to publish to.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Broker TCP port (1883 plain, usually 8883 with TLS).</summary>
    public int Port { get; set; } = 1883;

    /// <summary>MQTT client id; empty means "fma-edge-&lt;node&gt;". Must be unique on the broker.</summary>
    public string? ClientId { get; set; }

    /// <summary>User name for the broker; empty means anonymous.</summary>
    public string? Username { get; set; }

    /// <summary>Password for <see cref="Username"/>.</summary>
    public string? Password { get; set; }

    /// <summary>TLS settings for an external broker.</summary>
    public MqttTlsOptions Tls { get; set; } = new();

    /// <summary>MQTT keep-alive in seconds: how quickly a dead link is noticed (and the last will sent).</summary>
    public double KeepAliveSeconds { get; set; } = 15;

    /// <summary>Timeout of one connect attempt, in seconds.</summary>
    public double ConnectTimeoutSeconds { get; set; } = 10;

    /// <summary>Time to wait for a PUBACK before the connection is considered broken, in seconds.</summary>
    public double PublishTimeoutSeconds { get; set; } = 10;

    /// <summary>First reconnect delay in seconds; doubles per failed attempt (with +-20 % jitter).</summary>
    public double ReconnectMinSeconds { get; set; } = 1;

    /// <summary>Largest reconnect delay in seconds.</summary>
    public double ReconnectMaxSeconds { get; set; } = 30;

    /// <summary>Node name used in topics and payloads; empty means the machine's host name.</summary>
    public string? NodeName { get; set; }

    /// <summary>Topic prefix; empty means "fma/&lt;node&gt;". Segments are sanitised (no wildcards, no '$').</summary>
    public string? TopicPrefix { get; set; }

    /// <summary>The embedded broker (MQTTnet.Server) for a single box.</summary>
    public EmbeddedBrokerOptions Embedded { get; set; } = new();

    /// <summary>Sparkplug B output on a second connection to the same broker (off by default).</summary>
    public Sparkplug.SparkplugOptions Sparkplug { get; set; } = new();

    /// <summary>SQLite file of the outbox and the published journal. Relative paths are resolved against the
    /// current directory; the daemon passes one under its state directory.</summary>
    public string OutboxPath { get; set; } = "outbox.db";

    /// <summary>Most messages the outbox holds. When a new message would pass it, the oldest *results* are
    /// dropped (events only when no result is left) and an outbox_full event is queued.</summary>
    public long OutboxMaxMessages { get; set; } = 200_000;

    /// <summary>Most payload bytes the outbox holds; same policy as <see cref="OutboxMaxMessages"/>.</summary>
    public long OutboxMaxBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>Days a published-journal entry is kept (the window in which a re-processed file is recognised).</summary>
    public double JournalRetentionDays { get; set; } = 30;

    /// <summary>On stop, how long to keep draining the outbox before disconnecting, in seconds (what is left
    /// stays in the outbox for the next start).</summary>
    public double DrainOnStopSeconds { get; set; } = 5;

    /// <summary>The node name in use.</summary>
    public string EffectiveNodeName => string.IsNullOrWhiteSpace(NodeName) ? Dns.GetHostName() : NodeName.Trim();

    /// <summary>The client id in use.</summary>
    public string EffectiveClientId => string.IsNullOrWhiteSpace(ClientId) ? "fma-edge-" + Topics.SanitizeSegment(EffectiveNodeName) : ClientId.Trim();

    /// <summary>Every problem with the settings, empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (string.IsNullOrWhiteSpace(Host))
        {
            e.Add("Mqtt.Host is empty");
        }

        CheckPort(e, "Mqtt.Port", Port);
        CheckRange(e, "Mqtt.KeepAliveSeconds", KeepAliveSeconds, 1, 65535);
        CheckRange(e, "Mqtt.ConnectTimeoutSeconds", ConnectTimeoutSeconds, 0.1, 600);
        CheckRange(e, "Mqtt.PublishTimeoutSeconds", PublishTimeoutSeconds, 0.1, 600);
        CheckRange(e, "Mqtt.ReconnectMinSeconds", ReconnectMinSeconds, 0.01, 3600);
        CheckRange(e, "Mqtt.ReconnectMaxSeconds", ReconnectMaxSeconds, 0.01, 3600);
        if (ReconnectMaxSeconds < ReconnectMinSeconds)
        {
            e.Add($"Mqtt.ReconnectMaxSeconds ({ReconnectMaxSeconds}) is below Mqtt.ReconnectMinSeconds ({ReconnectMinSeconds})");
        }

        if (!string.IsNullOrEmpty(Password) && string.IsNullOrEmpty(Username))
        {
            e.Add("Mqtt.Password is set without Mqtt.Username");
        }

        if (ClientId is { Length: > 0 } id && (id.Length > 128 || id.Any(char.IsControl)))
        {
            e.Add("Mqtt.ClientId must be at most 128 printable characters");
        }

        if (TopicPrefix is { Length: > 0 } p && (p.Contains('#') || p.Contains('+') || p.StartsWith('$') || p.Contains('\0')))
        {
            e.Add($"Mqtt.TopicPrefix '{p}' must not contain '#', '+' or NUL, nor start with '$'");
        }

        if (string.IsNullOrWhiteSpace(OutboxPath))
        {
            e.Add("Mqtt.OutboxPath is empty");
        }

        if (OutboxMaxMessages < 10)
        {
            e.Add($"Mqtt.OutboxMaxMessages ({OutboxMaxMessages}) must be at least 10");
        }

        if (OutboxMaxBytes < 64 * 1024)
        {
            e.Add($"Mqtt.OutboxMaxBytes ({OutboxMaxBytes}) must be at least 65536");
        }

        CheckRange(e, "Mqtt.JournalRetentionDays", JournalRetentionDays, 0.001, 3650);
        CheckRange(e, "Mqtt.DrainOnStopSeconds", DrainOnStopSeconds, 0, 600);
        e.AddRange(Tls.Validate());
        e.AddRange(Embedded.Validate());
        e.AddRange(Sparkplug.Validate());
        if (Embedded.Enabled && Embedded.Port != Port)
        {
            e.Add($"Mqtt.Embedded is enabled on port {Embedded.Port} but the publisher connects to port {Port}: set both to the same port or disable the embedded broker");
        }

        if (Embedded.Enabled && Embedded.Tls.Enabled && !Tls.Enabled)
        {
            e.Add("Mqtt.Embedded.Tls is enabled, so the daemon's own publisher needs Mqtt.Tls (Enabled, CaFile = the CA of the broker's certificate, and a client certificate if the broker requires one)");
        }

        // The daemon's own publisher is a client of the embedded broker like any other.
        if (Embedded.Enabled && !Embedded.AnonymousAllowed && string.IsNullOrEmpty(Username) && !(Embedded.Tls.RequireClientCertificate && !string.IsNullOrEmpty(Tls.ClientCertificateFile)))
        {
            e.Add("Mqtt.Embedded refuses anonymous clients, so the daemon's own publisher needs Mqtt.Username and Mqtt.Password of a user in Mqtt.Embedded.PasswordFile");
        }
        else if (Embedded.Enabled && !string.IsNullOrEmpty(Username) && Embedded.LoadedUsers() is { } users && !users.Contains(Username))
        {
            e.Add($"Mqtt.Username '{Username}' is not a user of Mqtt.Embedded.PasswordFile, so the embedded broker would refuse the daemon's own publisher");
        }

        return e;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem.</summary>
    public void ThrowIfInvalid()
    {
        var errors = Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid MQTT options:\n  " + string.Join("\n  ", errors));
        }
    }

    /// <summary>A deep copy, so later edits of this instance do not reach a running publisher.</summary>
    public MqttOptions Clone()
    {
        var c = (MqttOptions)MemberwiseClone();
        c.Tls = (MqttTlsOptions)Tls.CloneShallow();
        c.Embedded = Embedded.CloneShallow();
        c.Sparkplug = Sparkplug.CloneShallow();
        return c;
    }

    internal static void CheckPort(List<string> e, string name, int port)
    {
        if (port is < 1 or > 65535)
        {
            e.Add($"{name} ({port}) must be 1..65535");
        }
    }

    internal static void CheckRange(List<string> e, string name, double v, double min, double max)
    {
        if (double.IsNaN(v) || v < min || v > max)
        {
            e.Add($"{name} ({v}) must be {min}..{max}");
        }
    }
}

/// <summary>TLS to an external broker: server verification against a CA file and an optional client
/// certificate (PEM certificate + key, or PFX). Validated with <see cref="MqttOptions"/>.</summary>
public sealed class MqttTlsOptions
{
    /// <summary>Use TLS.</summary>
    public bool Enabled { get; set; }

    /// <summary>PEM file of the CA(s) that signed the broker's certificate; empty means the system trust store.</summary>
    public string? CaFile { get; set; }

    /// <summary>Client certificate: a PEM certificate file (with <see cref="ClientKeyFile"/>) or a .pfx/.p12 file.</summary>
    public string? ClientCertificateFile { get; set; }

    /// <summary>PEM private key of the client certificate (not used for PFX).</summary>
    public string? ClientKeyFile { get; set; }

    /// <summary>Password of the PFX file or of an encrypted PEM key.</summary>
    public string? ClientCertificatePassword { get; set; }

    /// <summary>Host name expected in the broker certificate; empty means <see cref="MqttOptions.Host"/>.</summary>
    public string? ServerName { get; set; }

    /// <summary>Accept any broker certificate. For tests only: it removes the protection TLS exists for.</summary>
    public bool AllowUntrustedCertificates { get; set; }

    internal object CloneShallow() => MemberwiseClone();

    internal IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            yield break;
        }

        if (CaFile is { Length: > 0 } ca && !File.Exists(ca))
        {
            yield return $"Mqtt.Tls.CaFile not found: {ca}";
        }

        if (ClientCertificateFile is { Length: > 0 } cert)
        {
            if (!File.Exists(cert))
            {
                yield return $"Mqtt.Tls.ClientCertificateFile not found: {cert}";
            }

            var pfx = cert.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || cert.EndsWith(".p12", StringComparison.OrdinalIgnoreCase);
            if (!pfx && string.IsNullOrEmpty(ClientKeyFile))
            {
                yield return "Mqtt.Tls.ClientKeyFile is required with a PEM Mqtt.Tls.ClientCertificateFile";
            }
        }
        else if (!string.IsNullOrEmpty(ClientKeyFile))
        {
            yield return "Mqtt.Tls.ClientKeyFile is set without Mqtt.Tls.ClientCertificateFile";
        }

        if (ClientKeyFile is { Length: > 0 } key && !File.Exists(key))
        {
            yield return $"Mqtt.Tls.ClientKeyFile not found: {key}";
        }
    }
}

/// <summary>The embedded MQTT broker (MQTTnet.Server): on by default, bound to loopback so nothing outside the
/// box can reach it unless configured.</summary>
public sealed class EmbeddedBrokerOptions
{
    /// <summary>Run the embedded broker.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>IP address to listen on; anything but loopback exposes it to the network, and then it must authenticate
    /// (<see cref="PasswordFile"/>) unless <see cref="AllowAnonymous"/> says otherwise.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>Users and salted password hashes, mosquitto's format (<c>fma-edge broker passwd FILE USER</c> or
    /// mosquitto_passwd writes it). When set, a client must give a user and password from it (unless anonymous clients
    /// are allowed); the daemon's own publisher then needs Mqtt:Username/Password too.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>Topic access rules, mosquitto's acl_file format; unset: every client may use every topic, except the
    /// daemon's own topics, which only the daemon may publish under (always).</summary>
    public string? AclFile { get; set; }

    /// <summary>Accept clients without a user name. Default: yes on loopback without a <see cref="PasswordFile"/>, no
    /// otherwise. Allowed beyond loopback only when set to true explicitly, and then status reports it as a problem.
    /// A client authenticated by its certificate (<see cref="EmbeddedTlsOptions.RequireClientCertificate"/>) is not
    /// anonymous: its certificate's common name is its user name.</summary>
    public bool? AllowAnonymous { get; set; }

    /// <summary>Whether clients without a user name (and without a client certificate) are accepted, after the defaults above.</summary>
    public bool AnonymousAllowed => AllowAnonymous ?? (string.IsNullOrEmpty(PasswordFile) && IsLoopback && !Tls.RequireClientCertificate);

    /// <summary>TLS on the listener instead of plain TCP, optionally with client certificates.</summary>
    public EmbeddedTlsOptions Tls { get; set; } = new();

    /// <summary>True when <see cref="BindAddress"/> is a loopback address (nothing outside the box reaches it).</summary>
    public bool IsLoopback => IPAddress.TryParse(BindAddress, out var a) && IPAddress.IsLoopback(a);

    /// <summary>TCP port to listen on.</summary>
    public int Port { get; set; } = 1883;

    /// <summary>Most messages queued per slow subscriber before the oldest are dropped.</summary>
    public int MaxPendingMessagesPerClient { get; set; } = 10_000;

    internal EmbeddedBrokerOptions CloneShallow()
    {
        var c = (EmbeddedBrokerOptions)MemberwiseClone();
        c.Tls = (EmbeddedTlsOptions)Tls.CloneShallow();
        return c;
    }

    // The users of PasswordFile, or null when none is set or it cannot be read (Validate reports that).
    internal IReadOnlyCollection<string>? LoadedUsers()
    {
        try
        {
            return string.IsNullOrEmpty(PasswordFile) ? null : Broker.PasswordFile.Load(PasswordFile).Users;
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    private static void CheckFile<T>(List<string> e, string key, string? path, Func<string, T> load)
    {
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        try
        {
            load(path);
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException or FormatException)
        {
            e.Add($"{key}: {x.Message}");
        }
    }

    internal IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            yield break;
        }

        if (!IPAddress.TryParse(BindAddress, out _))
        {
            yield return $"Mqtt.Embedded.BindAddress '{BindAddress}' is not an IP address";
        }

        var e = new List<string>();
        MqttOptions.CheckPort(e, "Mqtt.Embedded.Port", Port);
        if (MaxPendingMessagesPerClient < 1)
        {
            e.Add("Mqtt.Embedded.MaxPendingMessagesPerClient must be at least 1");
        }

        CheckFile(e, "Mqtt.Embedded.PasswordFile", PasswordFile, Broker.PasswordFile.Load);
        CheckFile(e, "Mqtt.Embedded.AclFile", AclFile, Broker.AclFile.Load);
        e.AddRange(Tls.Validate());
        if (!IsLoopback && string.IsNullOrEmpty(PasswordFile) && AllowAnonymous != true && !(Tls.Enabled && Tls.RequireClientCertificate))
        {
            e.Add($"Mqtt.Embedded.BindAddress {BindAddress} is reachable from the network: set Mqtt.Embedded.PasswordFile " +
                "(users: fma-edge broker passwd FILE USER), or Mqtt.Embedded.AllowAnonymous=true to accept anyone (reported by status)");
        }

        if (AllowAnonymous == false && string.IsNullOrEmpty(PasswordFile) && !(Tls.Enabled && Tls.RequireClientCertificate))
        {
            e.Add("Mqtt.Embedded.AllowAnonymous is false but no Mqtt.Embedded.PasswordFile is set: no client could connect");
        }

        foreach (var x in e)
        {
            yield return x;
        }
    }
}

/// <summary>TLS on the embedded broker's listener (PEM files, as mosquitto takes them). With
/// <see cref="RequireClientCertificate"/> every client must present a certificate signed by <see cref="ClientCaFile"/>;
/// its common name is then its user name for the ACL (mosquitto's <c>use_identity_as_username</c>).</summary>
public sealed class EmbeddedTlsOptions
{
    /// <summary>Listen with TLS (plain TCP is then not offered).</summary>
    public bool Enabled { get; set; }

    /// <summary>The broker's certificate (PEM).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>Its private key (PEM, unencrypted).</summary>
    public string? KeyFile { get; set; }

    /// <summary>CA (PEM) that signs the client certificates.</summary>
    public string? ClientCaFile { get; set; }

    /// <summary>Refuse clients without a certificate signed by <see cref="ClientCaFile"/>.</summary>
    public bool RequireClientCertificate { get; set; }

    internal object CloneShallow() => MemberwiseClone();

    internal IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            yield break;
        }

        foreach (var (key, path) in new[] { ("CertificateFile", CertificateFile), ("KeyFile", KeyFile) })
        {
            if (string.IsNullOrEmpty(path))
            {
                yield return $"Mqtt.Embedded.Tls.{key} is required with Mqtt.Embedded.Tls.Enabled";
            }
            else if (!File.Exists(path))
            {
                yield return $"Mqtt.Embedded.Tls.{key} not found: {path}";
            }
        }

        if (RequireClientCertificate && string.IsNullOrEmpty(ClientCaFile))
        {
            yield return "Mqtt.Embedded.Tls.RequireClientCertificate needs Mqtt.Embedded.Tls.ClientCaFile (the CA that signs the client certificates)";
        }
        else if (!string.IsNullOrEmpty(ClientCaFile) && !File.Exists(ClientCaFile))
        {
            yield return $"Mqtt.Embedded.Tls.ClientCaFile not found: {ClientCaFile}";
        }
    }
}
