using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Publishing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Messaging;

/// <summary>Registers the messaging parts with a host: the embedded broker (started first, stopped last), the
/// publisher and, when enabled, the Sparkplug B publisher, as singletons and hosted services.</summary>
public static class MessagingServiceCollectionExtensions
{
    /// <summary>Adds the <see cref="MqttPublisher"/> and, when <c>options.Embedded.Enabled</c>, the
    /// <see cref="EmbeddedBroker"/> as a hosted service (started before anything registered later, stopped after it). The
    /// options are validated now (throws listing every problem); the outbox is opened when the publisher is first resolved.
    /// <paramref name="session"/> gives the publisher its session id (default: a new UUID v7). With
    /// <paramref name="hostPublisher"/> the host starts and stops the publisher too; the daemon passes false because it
    /// starts the publisher after loading the model and drains it before stopping.</summary>
    public static IServiceCollection AddFmaEdgeMessaging(this IServiceCollection services, MqttOptions options, string version,
        Func<IServiceProvider, string>? session = null, bool hostPublisher = true)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        var snapshot = options.Clone();

        // Hosted services start in registration order and stop in reverse: broker up before the publisher
        // connects, publisher drained and "offline" before the broker goes away.
        // (AddHostedService would de-duplicate two registrations of the same adapter type.)
        if (snapshot.Embedded.Enabled)
        {
            var reserved = ReservedTopics.Of(new Topics(snapshot.TopicPrefix, snapshot.EffectiveNodeName), snapshot.EffectiveClientId, snapshot.Username);
            services.AddSingleton(sp => new EmbeddedBroker(snapshot.Embedded, sp.GetService<ILogger<EmbeddedBroker>>(), reserved));
            services.AddSingleton<IHostedService>(sp => new HostedAdapter(sp.GetRequiredService<EmbeddedBroker>()));
        }

        services.AddSingleton(sp => new MqttPublisher(snapshot, version, sp.GetService<ILogger<MqttPublisher>>(), sp.GetService<TimeProvider>(),
            session?.Invoke(sp)));
        if (hostPublisher)
        {
            services.AddSingleton<IHostedService>(sp => new HostedAdapter(sp.GetRequiredService<MqttPublisher>()));
        }

        if (snapshot.Sparkplug.Enabled)
        {
            services.AddSingleton(sp => new Sparkplug.SparkplugPublisher(snapshot, sp.GetRequiredService<MqttPublisher>(),
                sp.GetService<ILogger<Sparkplug.SparkplugPublisher>>(), sp.GetService<TimeProvider>()));
            if (hostPublisher)
            {
                services.AddSingleton<IHostedService>(sp => new HostedAdapter(sp.GetRequiredService<Sparkplug.SparkplugPublisher>()));
            }
        }

        return services;
    }

    // AddHostedService needs a distinct instance per registration; this forwards to the singleton.
    private sealed class HostedAdapter(IHostedService inner) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);
    }
}
