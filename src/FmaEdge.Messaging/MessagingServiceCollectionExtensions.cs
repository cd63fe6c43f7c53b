using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Publishing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Messaging;

/// <summary>Registers the messaging parts with a host: the embedded broker (started first, stopped last) and
/// the publisher, both as singletons and hosted services.</summary>
public static class MessagingServiceCollectionExtensions
{
    /// <summary>Adds <see cref="EmbeddedBroker"/> and <see cref="MqttPublisher"/>. The options are validated now
    /// (throws listing every problem); the outbox is opened when the publisher is first resolved.</summary>
    public static IServiceCollection AddFmaEdgeMessaging(this IServiceCollection services, MqttOptions options, string version)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        var snapshot = options.Clone();
        services.AddSingleton(sp => new EmbeddedBroker(snapshot.Embedded, sp.GetService<ILogger<EmbeddedBroker>>()));
        services.AddSingleton(sp => new MqttPublisher(snapshot, version, sp.GetService<ILogger<MqttPublisher>>(), sp.GetService<TimeProvider>()));

        // Hosted services start in registration order and stop in reverse: broker up before the publisher
        // connects, publisher drained and "offline" before the broker goes away.
        // (AddHostedService would de-duplicate two registrations of the same adapter type.)
        services.AddSingleton<IHostedService>(sp => new HostedAdapter(sp.GetRequiredService<EmbeddedBroker>()));
        services.AddSingleton<IHostedService>(sp => new HostedAdapter(sp.GetRequiredService<MqttPublisher>()));
        return services;
    }

    // AddHostedService needs a distinct instance per registration; this forwards to the singleton.
    private sealed class HostedAdapter(IHostedService inner) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);
    }
}
