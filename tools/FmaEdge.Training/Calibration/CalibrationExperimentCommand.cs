using System.Globalization;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.Training.Evaluation;
using FmaEdge.Vision;

namespace FmaEdge.Training.Calibration;

/// <summary>The handler of <c>fma-train calibration-experiment --model FILE.onnx --data DIR|CSV [--splits 200] [--seed 0]
/// [--calib-fraction 0.5] [--target-precision 0.99] [--confidence 0.9] [--cache FILE.json]</c>: runs the model once
/// (or reads its cached outputs), then <see cref="CalibrationExperiment"/>, and prints a Markdown table. Stateless.</summary>
public static class CalibrationExperimentCommand
{
    /// <summary>Runs the experiment; returns the process exit code.</summary>
    public static int Run(string modelPath, string dataPath, int splits, int seed, double calibFraction, double targetPrecision, double confidence,
        string? cachePath = null, int batchSize = 32, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            if (splits < 1 || !(calibFraction > 0 && calibFraction < 1))
            {
                throw new ArgumentException($"need --splits >= 1 and --calib-fraction in (0, 1), got {splits} and {calibFraction}");
            }

            var model = ModelContract.Load(modelPath);
            var cached = cachePath is null ? null : CalibrationExperiment.ReadCache(cachePath, model);
            IReadOnlyList<LabeledImage> images;
            IReadOnlyList<float[][]> outputs;
            if (cached is { } c)
            {
                (images, outputs) = c;
                output.WriteLine($"outputs of {images.Count} images read from {cachePath}");
            }
            else
            {
                var eval = ModelEvaluator.Evaluate(modelPath, dataPath, new EvaluationOptions
                {
                    BatchSize = batchSize,
                    Inference = new InferenceOptions { Providers = [ExecutionProviders.Cpu] },
                    Progress = new ConsoleProgress(output, "evaluate"),
                }, cancellationToken);
                (images, outputs) = (eval.Images, eval.RawOutputs);
                if (cachePath is not null)
                {
                    CalibrationExperiment.WriteCache(cachePath, model, images, outputs);
                    output.WriteLine($"outputs of {images.Count} images written to {cachePath}");
                }
            }

            var result = CalibrationExperiment.Run(model, images, outputs, splits, seed, calibFraction, targetPrecision, confidence);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{result.Images} images, {splits} stratified splits (seeds {seed}..{seed + splits - 1}), {calibFraction:P0} of each leaf to calibration, the rest to test; target precision {targetPrecision:P1}"));
            output.Write(CalibrationExperiment.ToMarkdown(result, model.Tree.Levels.Select(l => l.Name).ToList()));
            return EvalCommand.Ok;
        }
        catch (Exception e) when (EvalCommand.IsInputError(e) || e is System.Text.Json.JsonException)
        {
            error.WriteLine($"fma-train calibration-experiment: {e.Message}");
            return EvalCommand.Failed;
        }
    }
}
