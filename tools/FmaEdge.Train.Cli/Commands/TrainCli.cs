using System.CommandLine;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>The fma-train command tree. Stateless.</summary>
public static class TrainCli
{
    public static RootCommand Build()
    {
        var root = new RootCommand("fma-train: train hierarchical classifiers (ConvNeXt, ResNet-50+CBAM, ViT) and export them as self-describing ONNX models.");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(EvaluationCommands.Eval());
        root.Subcommands.Add(EvaluationCommands.Calibrate());
        root.Subcommands.Add(EvaluationCommands.Quantize());
        root.Subcommands.Add(EvaluationCommands.CalibrationExperiment());
        root.Subcommands.Add(CompareCommand.Create());
        return root;
    }

    /// <summary>Ctrl-C requests a clean stop (checkpoint, then exit) instead of killing the process mid-write.</summary>
    internal static CancellationTokenSource CancelOnCtrlC()
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (!cts.IsCancellationRequested)
            {
                e.Cancel = true;
                Console.Error.WriteLine("stopping after the current batch (Ctrl-C again to abort at once)...");
                cts.Cancel();
            }
        };
        return cts;
    }
}
