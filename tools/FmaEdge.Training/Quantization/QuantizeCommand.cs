using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Export;
using FmaEdge.Vision;

namespace FmaEdge.Training.Quantization;

/// <summary>The handler of <c>fma-train quantize --model M.onnx --data DIR --out Q.onnx [--val DIR] [--images N]
/// [--method percentile|minmax] [--percentile P] [--activations int8|uint8] [--quantize-heads] [--min-agreement A]</c>.
/// Returns the process exit code. Stateless.</summary>
public static class QuantizeCommand
{
    public static int Run(string modelPath, string dataPath, string outPath, QuantizationOptions options, string? valPath = null,
        TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            var run = ModelQuantizer.Quantize(modelPath, dataPath, outPath, options with { Progress = new ConsoleProgress(output, "calibrating activations") },
                valPath, cancellationToken);
            Print(run, output);
            return EvalCommand.Ok;
        }
        catch (Exception e) when (EvalCommand.IsInputError(e) || e is ExportVerificationException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            error.WriteLine($"fma-train quantize: {e.Message}");
            return EvalCommand.Failed;
        }
    }

    /// <summary>What was quantized, how close it stays to the float model, the int8 kernels, and (with --val) both models' accuracy.</summary>
    public static void Print(QuantizationRun run, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(output);
        var inv = CultureInfo.InvariantCulture;
        var spec = run.Written.Manifest.Quantization!;
        var tree = run.Written.Tree;
        output.WriteLine(string.Create(inv,
            $"quantized {string.Join(", ", spec.QuantizedOps.Select(kv => $"{kv.Value} {kv.Key}"))} (weights {spec.Weights}, activations {spec.Activations}, {spec.Method}{(spec.Percentile is { } p ? $" {p}" : "")}, {spec.CalibrationImages} images); kept float: {(spec.KeptFloat.Count == 0 ? "none" : string.Join(", ", spec.KeptFloat))}"));
        output.WriteLine(string.Create(inv,
            $"top-1 agreement with the float model on the {run.VerifiedImages} calibration images: {string.Join(", ", run.Agreement.Select((a, l) => $"{tree.Levels[l].Name} {a * 100:0.0}%"))}; largest probability change {run.MaxProbabilityChange:0.000}"));
        var int8 = run.CpuKernels.Where(kv => ModelQuantizer.Int8Kernels.Contains(kv.Key)).ToList();
        output.WriteLine(int8.Count == 0
            ? "warning: ONNX Runtime's CPU provider fused no int8 kernel from this graph; it will run in float"
            : $"ONNX Runtime CPU runs it with {string.Join(", ", int8.Select(kv => $"{kv.Value} {kv.Key}"))}");
        if (int8.Sum(kv => kv.Value) < spec.QuantizedOps.Values.Sum())
        {
            output.WriteLine("note: on this CPU ONNX Runtime runs some quantized operators in float (on x86 it fuses int8-activation " +
                "convolutions only on ARM); for x86 CPU serving quantize with --activations uint8; TensorRT and ARM take this file as it is");
        }
        if (run.FloatValidation is { } f && run.QuantizedValidation is { } q)
        {
            output.WriteLine($"validation ({q.Images.Count} images): top-1 float -> int8");
            for (var l = 0; l < tree.Depth; l++)
            {
                output.WriteLine(string.Create(inv, $"  {tree.Levels[l].Name,-22} {f.Metrics.Levels[l].Top1 * 100,6:0.00}% -> {q.Metrics.Levels[l].Top1 * 100,6:0.00}%"));
            }

            output.WriteLine(string.Create(inv,
                $"  coarse answers         precision {f.Metrics.Coarse.Precision * 100:0.00}% -> {q.Metrics.Coarse.Precision * 100:0.00}%, full-depth coverage {f.Metrics.Coarse.CoverageByLevel[^1] * 100:0.0}% -> {q.Metrics.Coarse.CoverageByLevel[^1] * 100:0.0}%"));
        }

        output.WriteLine(string.Create(inv,
            $"wrote {run.Written.Path} ({run.Written.Bytes / 1e6:0.0} MB, float {run.Source.Bytes / 1e6:0.0} MB; {run.Written.ShortHash}). Its thresholds are the float model's: refit them on the int8 model with `fma-train calibrate`"));
    }
}
