using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace FmaEdge.Messaging.Broker;

/// <summary>The topics the daemon that runs the broker publishes on (topic filters): only the client
/// <paramref name="OwnerClientId"/> (with the user <paramref name="OwnerUser"/>, null when anonymous) may publish there,
/// so no other client can clear or fake its retained status and model, or its results.</summary>
public sealed record ReservedTopics(IReadOnlyList<string> Filters, string OwnerClientId, string? OwnerUser)
{
    /// <summary>The daemon's own topics under <paramref name="topics"/>: status, model, events, stats and every result.</summary>
    public static ReservedTopics Of(Topics topics, string ownerClientId, string? ownerUser) =>
        new([topics.Status, topics.Model, topics.Events, topics.Stats, topics.Prefix + "/+/result"], ownerClientId,
            string.IsNullOrEmpty(ownerUser) ? null : ownerUser);

    /// <summary>True when <paramref name="topic"/> is reserved and the client is not the owner.</summary>
    public bool Forbids(string? clientId, string? user, string topic) =>
        (clientId != OwnerClientId || (string.IsNullOrEmpty(user) ? null : user) != OwnerUser) && Filters.Any(f => AclFile.Matches(f, topic));
}

/// <summary>The single-box MQTT broker (MQTTnet.Server), listening on <see cref="EmbeddedBrokerOptions.BindAddress"/>
/// (loopback by default) so that local consumers and the publisher meet without an external broker. Does
/// nothing when disabled. Start/stop with the host (IHostedService; register it before the publisher).
/// Authenticates against a password file and applies an ACL file when configured (mosquitto's formats), assigns a
/// client id to clients that send none, and keeps the daemon's own topics (<see cref="ReservedTopics"/>) its own.
/// Thread-safe: Start/Stop may be called from any thread; concurrent calls are serialised.</summary>
public sealed partial class EmbeddedBroker : IHostedService, IAsyncDisposable
{
    private readonly EmbeddedBrokerOptions _o;
    private readonly ILogger _log;
    private readonly ReservedTopics? _reserved;
    private readonly SemaphoreSlim _gate = new(1, 1);
    // User name of each connected client id (null: anonymous), for the ACL's read checks at delivery.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string?> _users = new(StringComparer.Ordinal);
    private PasswordFile? _passwords;
    private AclFile? _acl;
    private MqttServer? _server;
    private long _clients;
    private long _refusedConnections;
    private long _refusedPublishes;

    /// <summary>Creates the broker (not started). Throws when the options are invalid.</summary>
    public EmbeddedBroker(EmbeddedBrokerOptions options, ILogger<EmbeddedBroker>? logger = null, ReservedTopics? reserved = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate().ToList();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid embedded broker options:\n  " + string.Join("\n  ", errors));
        }

        _o = options.CloneShallow();
        _log = (ILogger?)logger ?? NullLogger.Instance;
        _reserved = reserved;
    }

    /// <summary>Connections refused (unknown user, wrong password, anonymous where not allowed).</summary>
    public long RefusedConnections => Interlocked.Read(ref _refusedConnections);

    /// <summary>Publishes refused (outside the client's ACL, or under the daemon's own topics).</summary>
    public long RefusedPublishes => Interlocked.Read(ref _refusedPublishes);

    /// <summary>True when listening.</summary>
    public bool IsRunning => _server?.IsStarted == true;

    /// <summary>Endpoint it listens on.</summary>
    public IPEndPoint EndPoint => new(IPAddress.Parse(_o.BindAddress), _o.Port);

    /// <summary>Clients currently connected.</summary>
    public long ConnectedClients => Interlocked.Read(ref _clients);

    /// <summary>Starts listening (no-op when disabled or already running). Throws when the port is taken.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_o.Enabled)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_server is not null)
            {
                return;
            }

            var address = IPAddress.Parse(_o.BindAddress);
            var factory = new MqttServerFactory();
            var b = factory.CreateServerOptionsBuilder()
                .WithMaxPendingMessagesPerClient(_o.MaxPendingMessagesPerClient)
                .WithPersistentSessions(true);
            var v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
            if (_o.Tls.Enabled)
            {
                // TLS only: no plain listener beside it.
                b = b.WithoutDefaultEndpoint().WithEncryptedEndpoint().WithEncryptedEndpointPort(_o.Port).WithEncryptionCertificate(LoadServerCertificate(_o.Tls));
                b = v6
                    ? b.WithEncryptedEndpointBoundIPV6Address(address).WithEncryptedEndpointBoundIPAddress(IPAddress.None)
                    : b.WithEncryptedEndpointBoundIPAddress(address).WithEncryptedEndpointBoundIPV6Address(IPAddress.None);
                if (!string.IsNullOrEmpty(_o.Tls.ClientCaFile))
                {
                    var ca = new X509Certificate2Collection();
                    ca.ImportFromPemFile(_o.Tls.ClientCaFile);
                    b = _o.Tls.RequireClientCertificate
                        ? b.WithClientCertificate((_, cert, chain, errors) => ClientCertificateValid(cert, chain, ca))
                        : b.WithRemoteCertificateValidationCallback((_, cert, chain, errors) => cert is null || ClientCertificateValid(cert, chain, ca));
                }
            }
            else
            {
                b = b.WithDefaultEndpoint().WithDefaultEndpointPort(_o.Port);
                b = v6
                    ? b.WithDefaultEndpointBoundIPV6Address(address).WithDefaultEndpointBoundIPAddress(IPAddress.None)
                    : b.WithDefaultEndpointBoundIPAddress(address).WithDefaultEndpointBoundIPV6Address(IPAddress.None);
            }

            // Read at each start, so a restart picks up edited files.
            _passwords = string.IsNullOrEmpty(_o.PasswordFile) ? null : PasswordFile.Load(_o.PasswordFile);
            _acl = string.IsNullOrEmpty(_o.AclFile) ? null : AclFile.Load(_o.AclFile);
            var server = factory.CreateMqttServer(b.Build());
            server.ValidatingConnectionAsync += ValidateConnection;
            server.InterceptingPublishAsync += InterceptPublish;
            server.InterceptingClientEnqueueAsync += InterceptDelivery;
            server.ClientConnectedAsync += _ =>
            {
                Interlocked.Increment(ref _clients);
                return Task.CompletedTask;
            };
            server.ClientDisconnectedAsync += e =>
            {
                Interlocked.Decrement(ref _clients);
                _users.TryRemove(e.ClientId, out _);
                return Task.CompletedTask;
            };
            try
            {
                await server.StartAsync().ConfigureAwait(false);
            }
            catch
            {
                server.Dispose();
                throw;
            }

            _server = server;
            LogStarted(_log, _o.BindAddress, _o.Port);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops listening and disconnects every client (their wills are sent).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_server is null)
            {
                return;
            }

            await _server.StopAsync().ConfigureAwait(false);
            _server.Dispose();
            _server = null;
            Interlocked.Exchange(ref _clients, 0);
            LogStopped(_log);
        }
        finally
        {
            _gate.Release();
        }
    }

    private Task ValidateConnection(ValidatingConnectionEventArgs e)
    {
        var user = string.IsNullOrEmpty(e.UserName) ? null : e.UserName;
        // A certificate the TLS handshake accepted names the client: its common name is its user (mosquitto's
        // use_identity_as_username); a user name and password sent beside it are not needed.
        var identity = _o.Tls.RequireClientCertificate ? e.ClientCertificate?.GetNameInfo(X509NameType.SimpleName, forIssuer: false) : null;
        if (!string.IsNullOrEmpty(identity))
        {
            user = identity;
        }
        else if (user is null ? !_o.AnonymousAllowed : _passwords is null || !_passwords.Verify(user, e.Password))
        {
            // A user name without a password file is refused too: the client expects to be checked.
            e.ReasonCode = user is null ? MqttConnectReasonCode.NotAuthorized : MqttConnectReasonCode.BadUserNameOrPassword;
            Interlocked.Increment(ref _refusedConnections);
            LogRefusedConnection(_log, e.ClientId, user ?? "(anonymous)", e.ReasonCode.ToString());
            return Task.CompletedTask;
        }

        if (string.IsNullOrEmpty(e.ClientId))
        {
            // MQTT 3.1.1 3.1.3-6 / MQTT 5 3.1.3-6: the server may accept an empty client id and assign a unique one.
            e.AssignedClientIdentifier = "auto-" + Guid.CreateVersion7().ToString("N");
        }

        _users[string.IsNullOrEmpty(e.ClientId) ? e.AssignedClientIdentifier : e.ClientId] = user;
        return Task.CompletedTask;
    }

    private Task InterceptPublish(InterceptingPublishEventArgs e)
    {
        var topic = e.ApplicationMessage.Topic;
        // The user the connection was accepted as (a client certificate's name, or the user name it logged in with).
        var user = e.ClientId is not null && _users.TryGetValue(e.ClientId, out var known) ? known : string.IsNullOrEmpty(e.UserName) ? null : e.UserName;
        string? why = null;
        if (_reserved is { } r && r.Forbids(e.ClientId, user, topic))
        {
            why = "the daemon's own topic";
        }
        else if (_acl is not null && e.ClientId is not null && !_acl.CanWrite(user, e.ClientId, topic))
        {
            why = "not granted by the ACL file";
        }

        if (why is not null)
        {
            e.ProcessPublish = false;
            e.Response.ReasonCode = MQTTnet.Protocol.MqttPubAckReasonCode.NotAuthorized;
            Interlocked.Increment(ref _refusedPublishes);
            LogRefusedPublish(_log, e.ClientId ?? "", topic, why);
        }

        return Task.CompletedTask;
    }

    private Task InterceptDelivery(InterceptingClientApplicationMessageEnqueueEventArgs e)
    {
        if (_acl is not null && !_acl.CanRead(_users.GetValueOrDefault(e.ReceiverClientId), e.ReceiverClientId, e.ApplicationMessage.Topic))
        {
            e.AcceptEnqueue = false;
        }

        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _gate.Dispose();
    }

    // A PEM certificate and key, through a PKCS#12 round trip so SslStream gets a key it can use on every platform.
    private static X509Certificate2 LoadServerCertificate(EmbeddedTlsOptions tls)
    {
        using var pem = X509Certificate2.CreateFromPemFile(tls.CertificateFile!, tls.KeyFile);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    // Client certificates must chain to the configured CA; names are not checked, a client has no host name.
    private static bool ClientCertificateValid(X509Certificate? cert, X509Chain? presented, X509Certificate2Collection ca) =>
        cert is not null && Publishing.MqttConnectOptionsFactory.ChainsTo(cert, presented, ca);

    [LoggerMessage(EventId = 6100, Level = LogLevel.Information, Message = "Embedded MQTT broker listening on {Address}:{Port}")]
    private static partial void LogStarted(ILogger logger, string address, int port);

    [LoggerMessage(EventId = 6101, Level = LogLevel.Information, Message = "Embedded MQTT broker stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(EventId = 6102, Level = LogLevel.Warning, Message = "Embedded MQTT broker refused client {ClientId} ({User}): {Reason}")]
    private static partial void LogRefusedConnection(ILogger logger, string clientId, string user, string reason);

    [LoggerMessage(EventId = 6103, Level = LogLevel.Warning, Message = "Embedded MQTT broker refused a publish by {ClientId} on {Topic}: {Why}")]
    private static partial void LogRefusedPublish(ILogger logger, string clientId, string topic, string why);
}
