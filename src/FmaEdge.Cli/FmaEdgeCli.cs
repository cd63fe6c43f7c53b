using System.CommandLine;
using FmaEdge.Cli.Commands;

namespace FmaEdge.Cli;

/// <summary>The fma-edge command line: run, status, classify, model validate, watch, bench, broker passwd, fleet. Stateless.</summary>
public static class FmaEdgeCli
{
    /// <summary>Parses and runs <paramref name="args"/>; returns the process exit code.</summary>
    public static int Run(string[] args, CliConsole console)
    {
        var root = Build(console);
        // The host handles SIGTERM itself and drains; System.CommandLine must not force an exit after 2 s.
        return root.Parse(args).Invoke(new InvocationConfiguration
        {
            ProcessTerminationTimeout = null,
            Output = console.Out,
            Error = console.Error,
        });
    }

    /// <summary>The root command with every sub-command.</summary>
    public static RootCommand Build(CliConsole console)
    {
        var root = new RootCommand("fma-edge: hierarchical defect classification on the edge (ONNX Runtime, OpenCV, MQTT)");
        root.Subcommands.Add(RunCommand.Create(console));
        root.Subcommands.Add(StatusCommand.Create(console));
        root.Subcommands.Add(ClassifyCommand.Create(console));
        root.Subcommands.Add(ModelCommand.Create(console));
        root.Subcommands.Add(WatchCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(BrokerCommand.Create(console));
        root.Subcommands.Add(FleetCommand.Create(console));
        return root;
    }

    /// <summary>The shared --config option.</summary>
    public static Option<FileInfo?> ConfigOption() => new("--config", "-c")
    {
        Description = "A configuration file used instead of /etc/fma-edge/*.json (defaults and FMAEDGE__ variables still apply)",
    };
}
