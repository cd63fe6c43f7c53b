using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Monitoring;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;
using FmaEdge.Daemon.Status;
using FmaEdge.Messaging;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Sparkplug;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Hosting;

/// <summary>Wires the daemon into a host: <c>services.AddFmaEdge(configuration)</c>. The result sink for
/// <c>Output:Type = mqtt</c> comes from the messaging module (register an <see cref="IResultSink"/> before or after);
/// <c>folder</c> uses <see cref="JsonFolderResultSink"/>.</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>Binds and validates the options (throws <see cref="ConfigurationErrorsException"/> listing every error)
    /// and registers every part of the daemon plus its hosted service.</summary>
    public static IServiceCollection AddFmaEdge(this IServiceCollection services, IConfiguration configuration)
    {
        var options = FmaEdgeConfiguration.Bind(configuration);
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<DaemonSession>();
        services.TryAddSingleton<ISystemdNotifier, SystemdNotifier>();
        services.TryAddSingleton(_ => WatchdogSettings.FromEnvironment());
        if (options.Output.Type == OutputType.Folder)
        {
            var path = string.IsNullOrWhiteSpace(options.Output.Path)
                ? Path.Combine(options.Paths.ResolvedStateDir, "results")
                : Path.GetFullPath(options.Output.Path);
            services.TryAddSingleton<IResultSink>(_ => new JsonFolderResultSink(path));
        }
        else
        {
            AddMqttSink(services, options);
        }

        // The sink's two roles, for parts that need only one.
        services.TryAddSingleton<IReporter>(sp => sp.GetRequiredService<IResultSink>());
        services.TryAddSingleton<IResultJournal>(sp => sp.GetRequiredService<IResultSink>());
        services.TryAddSingleton<IClassifierLoader, OnnxClassifierLoader>();
        services.TryAddSingleton<ModelManager>(); // tests register one first, on a clock of their own
        services.AddSingleton<InferencePipeline>();
        services.AddSingleton(sp => new SourceSet(CreateSources(options, sp.GetRequiredService<IReporter>(), sp.GetRequiredService<ILoggerFactory>(),
            sp.GetRequiredService<TimeProvider>())));
        services.AddSingleton(sp => new StatusService(options, sp.GetRequiredService<DaemonSession>(), sp.GetRequiredService<ModelManager>(),
            sp.GetRequiredService<InferencePipeline>(), sp.GetRequiredService<SourceSet>(), sp.GetRequiredService<IResultSink>(),
            sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new StatusServer(SocketPath(options), sp.GetRequiredService<StatusService>(),
            sp.GetRequiredService<SourceSet>(), sp.GetRequiredService<ILogger<StatusServer>>()));
        services.AddSingleton<FmaEdgeDaemon>();
        if (options.Metrics.Enabled)
        {
            // Before the daemon: a port that cannot be bound stops the start before any image is taken.
            services.AddSingleton(sp => new DaemonMetrics(options, sp.GetRequiredService<StatusService>(), sp.GetRequiredService<InferencePipeline>(),
                sp.GetService<MqttPublisher>() is { } publisher ? () => publisher.Health : null));
            services.AddHostedService(sp => new MetricsEndpoint(options.Metrics, sp.GetRequiredService<DaemonMetrics>(), sp.GetRequiredService<ILogger<MetricsEndpoint>>()));
        }

        services.AddHostedService(sp => sp.GetRequiredService<FmaEdgeDaemon>());
        return services;
    }

    /// <summary>The MQTT sink: the publisher with its durable outbox in StateDir, and the embedded broker when enabled
    /// (registered before the daemon, so it is up before the daemon connects and stops only after the daemon has drained
    /// and published "offline"). The daemon starts and stops the publisher itself. The publisher also hands trigger
    /// commands to the sources.</summary>
    private static void AddMqttSink(IServiceCollection services, FmaEdgeOptions options)
    {
        var mqtt = options.Mqtt.Clone();
        if (string.IsNullOrWhiteSpace(mqtt.NodeName))
        {
            mqtt.NodeName = options.EffectiveNodeName;
        }

        if (!Path.IsPathRooted(mqtt.OutboxPath))
        {
            mqtt.OutboxPath = Path.Combine(options.Paths.ResolvedStateDir, mqtt.OutboxPath);
        }

        services.AddFmaEdgeMessaging(mqtt, StatusService.Version, session: sp => sp.GetRequiredService<DaemonSession>().Id, hostPublisher: false);
        services.TryAddSingleton<IResultSink>(sp =>
        {
            var publisher = sp.GetRequiredService<MqttPublisher>();
            // Software triggers from <prefix>/<source>/trigger. The sources are looked up at the first trigger, not
            // here: they are made with this sink.
            publisher.TriggerHandler = source => sp.GetRequiredService<SourceSet>().Trigger(source);
            var sparkplug = sp.GetService<SparkplugPublisher>();
            sparkplug?.DeclareDevices(options.Sources.Where(s => s.Enabled).Select(s => s.Id));
            return new MqttResultSink(publisher, sparkplug);
        });
    }

    /// <summary>The status socket path the options ask for.</summary>
    public static string SocketPath(FmaEdgeOptions options) =>
        string.IsNullOrWhiteSpace(options.Status.Socket)
            ? Path.Combine(options.Paths.ResolvedRuntimeDir, "status.sock")
            : Path.GetFullPath(options.Status.Socket);

    private static List<IImageSource> CreateSources(FmaEdgeOptions options, IReporter sink, ILoggerFactory loggers, TimeProvider time) =>
        options.Sources.Where(s => s.Enabled)
            .Select(s => SourceTypes.All[s.Type].Create(s, sink, loggers.CreateLogger($"FmaEdge.Sources.{s.Id}"), time))
            .ToList();
}
