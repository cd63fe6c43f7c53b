using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet.Server;

namespace FmaEdge.Messaging.Broker;

/// <summary>The single-box MQTT broker (MQTTnet.Server), listening on <see cref="EmbeddedBrokerOptions.BindAddress"/>
/// (loopback by default) so that local consumers and the publisher meet without an external broker. Does
/// nothing when disabled. Start/stop with the host (IHostedService; register it before the publisher).
/// Thread-safe: Start/Stop may be called from any thread; concurrent calls are serialised.</summary>
public sealed partial class EmbeddedBroker : IHostedService, IAsyncDisposable
{
    private readonly EmbeddedBrokerOptions _o;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private MqttServer? _server;
    private long _clients;

    /// <summary>Creates the broker (not started). Throws when the options are invalid.</summary>
    public EmbeddedBroker(EmbeddedBrokerOptions options, ILogger<EmbeddedBroker>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate().ToList();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid embedded broker options:\n  " + string.Join("\n  ", errors));
        }

        _o = options.CloneShallow();
        _log = (ILogger?)logger ?? NullLogger.Instance;
    }

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
                .WithDefaultEndpoint()
                .WithDefaultEndpointPort(_o.Port)
                .WithMaxPendingMessagesPerClient(_o.MaxPendingMessagesPerClient)
                .WithPersistentSessions(true);
            b = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? b.WithDefaultEndpointBoundIPV6Address(address).WithDefaultEndpointBoundIPAddress(IPAddress.None)
                : b.WithDefaultEndpointBoundIPAddress(address).WithDefaultEndpointBoundIPV6Address(IPAddress.None);
            var server = factory.CreateMqttServer(b.Build());
            server.ClientConnectedAsync += _ =>
            {
                Interlocked.Increment(ref _clients);
                return Task.CompletedTask;
            };
            server.ClientDisconnectedAsync += _ =>
            {
                Interlocked.Decrement(ref _clients);
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

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _gate.Dispose();
    }

    [LoggerMessage(EventId = 6100, Level = LogLevel.Information, Message = "Embedded MQTT broker listening on {Address}:{Port}")]
    private static partial void LogStarted(ILogger logger, string address, int port);

    [LoggerMessage(EventId = 6101, Level = LogLevel.Information, Message = "Embedded MQTT broker stopped")]
    private static partial void LogStopped(ILogger logger);
}
