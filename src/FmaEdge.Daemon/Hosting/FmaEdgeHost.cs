using FmaEdge.Daemon.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace FmaEdge.Daemon.Hosting;

/// <summary>Builds the daemon host: layered configuration, systemd integration, Serilog and <c>AddFmaEdge</c>.
/// The executable's <c>run</c> command and in-process tests both start the daemon through this. Stateless.</summary>
public static class FmaEdgeHost
{
    /// <summary>Exit code for unusable configuration (sysexits EX_CONFIG); the unit does not restart on it.</summary>
    public const int ExitConfigError = 78;

    /// <summary>Creates a host builder. Throws <see cref="ConfigurationErrorsException"/> for bad configuration.
    /// <paramref name="configure"/> may add services (e.g. the messaging module's sink) before the host is built.</summary>
    public static HostApplicationBuilder CreateBuilder(string? configFile = null, IDictionary<string, string?>? overrides = null,
        string? systemConfigDir = null, Action<HostApplicationBuilder>? configure = null)
    {
        var configuration = FmaEdgeConfiguration.Build(configFile, systemConfigDir, overrides);
        var options = FmaEdgeConfiguration.Bind(configuration);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(configuration);
        builder.Services.AddSystemd();
        builder.Services.Configure<HostOptions>(h =>
        {
            h.ShutdownTimeout = TimeSpan.FromSeconds(30); // systemd's TimeoutStopSec (45 s) leaves room beyond this
            h.ServicesStartConcurrently = false;
        });
#pragma warning disable CA2000 // AddSerilog(dispose: true) owns the logger and disposes it with the host
        builder.Services.AddSerilog(CreateLogger(options), dispose: true);
#pragma warning restore CA2000
        configure?.Invoke(builder);
        builder.Services.AddFmaEdge(configuration);
        return builder;
    }

    /// <summary>Serilog from the logging options: console (the journal under systemd) and an optional rolling file.</summary>
    public static Serilog.Core.Logger CreateLogger(FmaEdgeOptions options)
    {
        var level = Enum.Parse<LogEventLevel>(options.Logging.Level);
        var underSystemd = Environment.GetEnvironmentVariable("INVOCATION_ID") is not null;
        var config = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .Enrich.FromLogContext()
            .Enrich.With<EventIdEnricher>()
            .Enrich.WithProperty("Node", options.EffectiveNodeName);
        if (options.Logging.JsonConsole)
        {
            config.WriteTo.Console(new CompactJsonFormatter(), standardErrorFromLevel: LogEventLevel.Verbose);
        }
        else
        {
            // The journal stamps its own time; a terminal gets one.
            var template = underSystemd
                ? "[{Level:u3}] {Eid} {SourceContext}: {Message:lj}{NewLine}{Exception}"
                : "{Timestamp:HH:mm:ss.fff} [{Level:u3}] {Eid} {Message:lj}{NewLine}{Exception}";
            config.WriteTo.Console(outputTemplate: template, standardErrorFromLevel: LogEventLevel.Verbose,
                formatProvider: System.Globalization.CultureInfo.InvariantCulture);
        }

        if (!string.IsNullOrWhiteSpace(options.Logging.File))
        {
            config.WriteTo.File(new CompactJsonFormatter(), options.Logging.File, rollingInterval: RollingInterval.Day,
                retainedFileCountLimit: options.Logging.RetainedFiles, fileSizeLimitBytes: 100L * 1024 * 1024, rollOnFileSizeLimit: true);
        }

        return config.CreateLogger();
    }
}
