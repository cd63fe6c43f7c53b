using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Sources;
using FmaEdge.Daemon.Status;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
        if (options.Output.Type == "folder")
        {
            var path = string.IsNullOrWhiteSpace(options.Output.Path)
                ? Path.Combine(options.Paths.ResolvedStateDir, "results")
                : Path.GetFullPath(options.Output.Path);
            services.TryAddSingleton<IResultSink>(_ => new JsonFolderResultSink(path));
        }
        else
        {
            services.TryAddSingleton<IResultSink>(_ => throw new InvalidOperationException(
                "FmaEdge:Output:Type is 'mqtt' but no MQTT result sink is registered (the messaging module provides it)"));
        }

        services.TryAddSingleton<IClassifierLoader, OnnxClassifierLoader>();
        services.AddSingleton<ModelManager>();
        services.AddSingleton<InferencePipeline>();
        services.AddSingleton(sp => new SourceSet(CreateSources(options, sp.GetRequiredService<IResultSink>(), sp.GetRequiredService<ILoggerFactory>())));
        services.AddSingleton(sp => new StatusService(options, sp.GetRequiredService<DaemonSession>(), sp.GetRequiredService<ModelManager>(),
            sp.GetRequiredService<InferencePipeline>(), sp.GetRequiredService<SourceSet>(), sp.GetRequiredService<IResultSink>(),
            sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new StatusServer(SocketPath(options), sp.GetRequiredService<StatusService>(),
            sp.GetRequiredService<SourceSet>(), sp.GetRequiredService<ILogger<StatusServer>>()));
        services.AddSingleton<FmaEdgeDaemon>();
        services.AddHostedService(sp => sp.GetRequiredService<FmaEdgeDaemon>());
        return services;
    }

    /// <summary>The status socket path the options ask for.</summary>
    public static string SocketPath(FmaEdgeOptions options) =>
        string.IsNullOrWhiteSpace(options.Status.Socket)
            ? Path.Combine(options.Paths.ResolvedRuntimeDir, "status.sock")
            : Path.GetFullPath(options.Status.Socket);

    private static List<IImageSource> CreateSources(FmaEdgeOptions options, IResultSink sink, ILoggerFactory loggers) =>
        options.Sources.Where(s => s.Enabled).Select(s => s.Type switch
        {
            "folder" => (IImageSource)new FolderSource(s, loggers.CreateLogger($"FmaEdge.Sources.{s.Id}"), sink),
            _ => new CameraSource(s, sink, loggers.CreateLogger($"FmaEdge.Sources.{s.Id}")),
        }).ToList();
}
