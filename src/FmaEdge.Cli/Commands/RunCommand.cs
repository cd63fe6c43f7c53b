using System.CommandLine;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge run [--config FILE]</c>: runs the daemon until SIGTERM/SIGINT. Exit 0 after a clean stop,
/// 78 for bad configuration, 1 when start-up fails (e.g. no model).</summary>
public static class RunCommand
{
    /// <summary>Lets a host add services (the MQTT sink) before the daemon starts; set by the messaging integration.</summary>
    public static Action<HostApplicationBuilder>? ConfigureHost { get; set; }

    public static Command Create(CliConsole console)
    {
        var config = FmaEdgeCli.ConfigOption();
        var cmd = new Command("run", "Run the daemon (under systemd: Type=notify, watchdog, clean drain on SIGTERM)") { config };
        cmd.SetAction(async (parse, ct) =>
        {
            // Before the host starts its threads (each would get its own malloc arena).
            var malloc = NativeMemory.Apply();
            FmaEdge.Daemon.Pipeline.InferenceThreads.Initialize(); // while this thread still has the normal priority
            HostApplicationBuilder builder;
            try
            {
                builder = FmaEdgeHost.CreateBuilder(parse.GetValue(config)?.FullName, configure: ConfigureHost);
            }
            catch (ConfigurationErrorsException e)
            {
                await console.Error.WriteLineAsync($"fma-edge: configuration is invalid ({e.Errors.Count} problem(s)):");
                foreach (var err in e.Errors)
                {
                    await console.Error.WriteLineAsync("  - " + err);
                }

                return FmaEdgeHost.ExitConfigError;
            }

            try
            {
                using var host = builder.Build();
                Log.NativeMemorySettings(host.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("FmaEdge.Native"), malloc);
                await host.RunAsync(CancellationToken.None);
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                await console.Error.WriteLineAsync("fma-edge: start-up failed: " + e.Message);
                return 1;
            }
        });
        return cmd;
    }
}
