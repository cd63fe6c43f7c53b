using System.CommandLine;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Training.Calibration;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Quantization;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>`fma-train eval` and `fma-train calibrate`: exported models through ONNX Runtime and the daemon's
/// preprocessing and decoding. Stateless.</summary>
internal static class EvaluationCommands
{
    private static Option<string> ModelOption() => new("--model") { Description = "Model file (.onnx) of the FmaEdge model contract", Required = true };

    private static Option<string> DataOption(string what) => new("--data") { Description = what + ": folder tree ROOT/<level 1>/.../<leaf>/ or a CSV manifest (path,leaf)", Required = true };

    private static Option<int> BatchOption() => new("--batch") { Description = "Images per inference batch", DefaultValueFactory = _ => 32 };

    private static Option<string> ProvidersOption() => new("--providers") { Description = "Execution providers to try in order (tensorrt,cuda,cpu)", DefaultValueFactory = _ => "cpu" };

    private static Option<double> TargetOption() => new("--target-precision") { Description = "Precision every level's coarse answers must reach", DefaultValueFactory = _ => ThresholdCalibrator.DefaultTargetPrecision };

    private static Option<double> ConfidenceOption() => new("--confidence")
    {
        Description = "Probability that the target holds on new images from the same distribution (exact binomial bound); 0 = point estimate on the calibration images, no guarantee",
        DefaultValueFactory = _ => ThresholdCalibrator.DefaultConfidence,
    };

    private static IReadOnlyList<string> Split(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static Command Eval()
    {
        var model = ModelOption();
        var data = DataOption("Labelled images");
        var json = new Option<string>("--json") { Description = "Write the evaluation JSON here", Required = true };
        var html = new Option<string?>("--html") { Description = "Also write a self-contained HTML report" };
        var batch = BatchOption();
        var providers = ProvidersOption();
        var cmd = new Command("eval", "Evaluate a model per level (top-1..5, path accuracy, consistency, mistake severity, hierarchical F1, coarse answers).")
        {
            model, data, json, html, batch, providers,
        };
        cmd.SetAction((r, ct) => Task.FromResult(EvalCommand.Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(json)!, r.GetValue(html),
            r.GetValue(batch), Split(r.GetValue(providers)!), cancellationToken: ct)));
        return cmd;
    }

    public static Command Calibrate()
    {
        var model = ModelOption();
        var data = DataOption("Held-out labelled images (validation set)");
        var target = TargetOption();
        var confidence = ConfidenceOption();
        var output = new Option<string?>("--out") { Description = "Write the calibrated model here (default: rewrite --model in place, atomically)" };
        var fraction = new Option<double>("--calib-fraction")
        {
            Description = "--data is the training tree: calibrate on the share of every leaf that `fma-train train --calib-fraction` set aside from it (the same files)",
        };
        var report = new Option<string?>("--report")
        {
            Description = "Also evaluate the calibrated model on these labelled images (folder tree or CSV; not the calibration images) and write report.json and report.html beside it, with history.json from there",
        };
        var batch = BatchOption();
        var providers = ProvidersOption();
        var cmd = new Command("calibrate", "Fit per-level temperatures and coarse-answer thresholds on held-out data and store them in the model file.")
        {
            model, data, fraction, report, target, confidence, output, batch, providers,
        };
        cmd.SetAction((r, ct) => Task.FromResult(CalibrateCommand.Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(target), r.GetValue(confidence), r.GetValue(output),
            r.GetValue(batch), Split(r.GetValue(providers)!), r.GetValue(fraction), r.GetValue(report), cancellationToken: ct)));
        return cmd;
    }

    public static Command Quantize()
    {
        var model = ModelOption();
        var data = DataOption("Images to measure activation ranges on (e.g. the training tree; not the images you evaluate on)");
        var output = new Option<string>("--out") { Description = "Write the int8 model here", Required = true };
        var val = new Option<string?>("--val") { Description = "Also evaluate the float and the int8 model on these labelled images" };
        var images = new Option<int>("--images") { Description = "Calibration images, taken in turn from every leaf", DefaultValueFactory = _ => 256 };
        var method = new Option<string>("--method") { Description = "Activation ranges: percentile or minmax", DefaultValueFactory = _ => "percentile" };
        var percentile = new Option<double>("--percentile") { Description = "Share of values (%) the percentile range keeps on each side", DefaultValueFactory = _ => 99.99 };
        var activations = new Option<string>("--activations")
        {
            Description = "int8 (symmetric: for TensorRT, its DLA and ARM CPUs) or uint8 (asymmetric: what ONNX Runtime fuses on x86 CPUs)",
            DefaultValueFactory = _ => "int8",
        };
        var heads = new Option<bool>("--quantize-heads") { Description = "Quantize the last layers (classifier heads) too" };
        var agreement = new Option<double>("--min-agreement")
        {
            Description = "Smallest share of calibration images whose top-1 answer must match the float model's at every level",
            DefaultValueFactory = _ => 0.9,
        };
        var id = new Option<string?>("--id") { Description = "Model id of the int8 model (default: the float model's id + -int8)" };
        var batch = BatchOption();
        var cmd = new Command("quantize", "Static int8 quantization (QDQ, per-channel weights, activations calibrated on real images), checked like every export.")
        {
            model, data, output, val, images, method, percentile, activations, heads, agreement, id, batch,
        };
        cmd.SetAction((r, ct) =>
        {
            QuantizationOptions options;
            try
            {
                options = new QuantizationOptions
                {
                    CalibrationImages = r.GetValue(images),
                    Method = QuantizationOptions.ParseMethod(r.GetValue(method)!),
                    Percentile = r.GetValue(percentile),
                    Activations = QuantizationOptions.ParseActivations(r.GetValue(activations)!),
                    QuantizeLastLayers = r.GetValue(heads),
                    MinAgreement = r.GetValue(agreement),
                    Id = r.GetValue(id),
                    BatchSize = r.GetValue(batch),
                };
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"fma-train quantize: {e.Message}");
                return Task.FromResult(EvalCommand.Failed);
            }

            return Task.FromResult(QuantizeCommand.Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(output)!, options, r.GetValue(val), cancellationToken: ct));
        });
        return cmd;
    }

    public static Command CalibrationExperiment()
    {
        var model = ModelOption();
        var data = DataOption("Labelled images to split again and again (e.g. the val set)");
        var splits = new Option<int>("--splits") { Description = "Random calibration/test splits", DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { Description = "Split i uses seed + i", DefaultValueFactory = _ => 0 };
        var fraction = new Option<double>("--calib-fraction") { Description = "Share of each leaf's images in the calibration part", DefaultValueFactory = _ => 0.5 };
        var target = TargetOption();
        var confidence = ConfidenceOption();
        var cache = new Option<string?>("--cache") { Description = "JSON file of the model's outputs: read when it matches the model, else written" };
        var batch = BatchOption();
        var cmd = new Command("calibration-experiment",
            "Repeat calibration over random calibration/test splits and count how often test precision falls below the target, point estimate vs guaranteed thresholds.")
        {
            model, data, splits, seed, fraction, target, confidence, cache, batch,
        };
        cmd.SetAction((r, ct) => Task.FromResult(CalibrationExperimentCommand.Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(splits), r.GetValue(seed),
            r.GetValue(fraction), r.GetValue(target), r.GetValue(confidence), r.GetValue(cache), r.GetValue(batch), cancellationToken: ct)));
        return cmd;
    }
}
