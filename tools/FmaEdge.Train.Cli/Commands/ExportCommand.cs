using System.CommandLine;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Training.Export;
using FmaEdge.Training.Native;
using FmaEdge.Training.Training;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>fma-train export: a checkpoint folder -> verified ONNX model.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint folder (RUNDIR/checkpoints/best or last) or its state.json", Required = true };
        var output = new Option<string>("--out") { Description = "ONNX file to write", Required = true };
        var images = new Option<string?>("--verify-images") { Description = "Folder of real images for the parity check (default: the run's validation data)" };
        var cmd = new Command("export", "Export a checkpoint as a self-describing ONNX model, verified against ONNX Runtime.");
        cmd.Options.Add(checkpoint);
        cmd.Options.Add(output);
        cmd.Options.Add(images);
        cmd.SetAction(r =>
        {
            try
            {
                TorchNative.EnsureLoaded();
                var dir = r.GetValue(images);
                IReadOnlyList<string>? verify = dir is null ? null
                    : Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Where(DatasetLoader.IsImageFile).Order(StringComparer.Ordinal).Take(32).ToList();
                var result = Trainer.Export(r.GetValue(checkpoint)!, r.GetValue(output)!, verify);
                Console.WriteLine($"exported {result.Path} ({result.Model.Bytes / 1024} KiB, sha256 {result.Model.ShortHash}); " +
                    $"ONNX Runtime matches TorchSharp within {result.MaxAbsDifference:G2} on {result.VerifiedImages} real images");
                return 0;
            }
            catch (Exception e) when (e is IOException or ExportVerificationException or TorchNativeException or InvalidDataException or ArgumentException or System.Text.Json.JsonException)
            {
                Console.Error.WriteLine("fma-train export: " + e.Message);
                return 1;
            }
        });
        return cmd;
    }
}
