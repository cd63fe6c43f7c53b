using FmaEdge.Core.Contract;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Export;
using FmaEdge.Vision;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace FmaEdge.Training.Quantization;

/// <summary>A quantized model as written, and what checked it: per-level top-1 agreement with the float model and the
/// largest change of any class probability on the verification images, the int8 kernels ONNX Runtime's CPU provider
/// made of it, and (when validation images were given) both models evaluated on them. Immutable.</summary>
public sealed record QuantizationRun(
    ValidatedModel Source,
    ValidatedModel Written,
    IReadOnlyList<double> Agreement,
    double MaxProbabilityChange,
    int VerifiedImages,
    IReadOnlyDictionary<string, int> CpuKernels,
    EvaluationResult? FloatValidation,
    EvaluationResult? QuantizedValidation);

/// <summary>Static int8 quantization of a contract model (<c>fma-train quantize</c>): activation ranges measured on real
/// images through the model's own preprocessing, the graph rewritten in QDQ form (<see cref="QdqGraph"/>), the manifest
/// told (<see cref="QuantizationSpec"/>), and the result checked like every export before it is moved into place:
/// contract validation, ONNX Runtime loads it, and its top-1 answers agree with the float model's. Stateless.</summary>
public static class ModelQuantizer
{
    /// <summary>Operators that mean ONNX Runtime runs int8 arithmetic (after its QDQ fusions).</summary>
    public static readonly IReadOnlySet<string> Int8Kernels = new HashSet<string>(
        ["QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger", "QGemm", "DynamicQuantizeMatMul"]);

    /// <summary>Quantizes <paramref name="modelPath"/> with ranges measured on images of <paramref name="dataPath"/>
    /// (folder tree or CSV in the model's tree; images the model was not evaluated on, e.g. training images) and writes
    /// <paramref name="outPath"/>. With <paramref name="valPath"/>, both models are also evaluated there.</summary>
    public static QuantizationRun Quantize(string modelPath, string dataPath, string outPath, QuantizationOptions? options = null,
        string? valPath = null, CancellationToken cancellationToken = default)
    {
        options ??= new QuantizationOptions();
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid quantization options: " + string.Join("; ", errors), nameof(options));
        }

        var bytes = File.ReadAllBytes(modelPath);
        var report = ModelContract.Validate(bytes, modelPath);
        if (!report.IsValid)
        {
            throw new InvalidModelException(report);
        }

        var source = report.Model!;
        var proto = ModelProto.Parser.ParseFrom(bytes);
        if (source.Manifest.Quantization is not null || proto.Graph.Node.Any(n => n.OpType is "QuantizeLinear" or "DequantizeLinear"))
        {
            throw new InvalidOperationException($"'{modelPath}' is already quantized; quantize the float model it came from");
        }

        var (quantize, kept) = QdqGraph.Find(proto.Graph, options.QuantizeLastLayers);
        if (quantize.Count == 0)
        {
            throw new InvalidOperationException($"'{modelPath}' has no Conv or MatMul with constant weights to quantize");
        }

        var input = source.Manifest.Input;
        var batches = CalibrationBatches(source, dataPath, options, cancellationToken);
        var ranges = ActivationRanges.Measure(proto, input.Name, input.Height, input.Width, QdqGraph.ActivationTensors(quantize), batches, options, cancellationToken);
        QdqGraph.Rewrite(proto, quantize, ranges, options.Activations);

        var images = batches.Sum(b => b.Count);
        var spec = options.Describe(images,
            quantize.GroupBy(q => q.Node.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
            kept.Select(k => k.Weight).ToList(), source.Sha256);
        var manifest = source.Manifest with
        {
            Model = source.Manifest.Model with
            {
                Id = string.IsNullOrWhiteSpace(options.Id) ? source.Manifest.Model.Id + "-int8" : options.Id,
                CreatedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
            },
            Quantization = spec,
        };
        ModelContract.WriteManifest(proto, manifest);
        var quantizedBytes = proto.ToByteArray();
        var check = ModelContract.Validate(quantizedBytes, outPath);
        if (!check.IsValid)
        {
            throw new ExportVerificationException("the quantized model breaks the contract:\n  - " + string.Join("\n  - ", check.Violations));
        }

        // Checked before it is moved into place, so a failed check leaves nothing at the target.
        var full = Path.GetFullPath(outPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        ValidatedModel written;
        double[] agreement;
        double maxChange;
        IReadOnlyDictionary<string, int> kernels;
        try
        {
            File.WriteAllBytes(tmp, quantizedBytes);
            (agreement, maxChange) = Compare(modelPath, tmp, source.Tree.Depth, batches);
            var worst = agreement.Select((a, l) => (a, l)).MinBy(x => x.a);
            if (worst.a < options.MinAgreement)
            {
                throw new ExportVerificationException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"the quantized model's top-1 answer agrees with the float model's on only {worst.a * 100:0.0}% of {images} images at level {worst.l} (minimum {options.MinAgreement * 100:0.#}%); nothing written. Try --method percentile, --activations uint8 or more --images"));
            }

            kernels = CpuKernels(quantizedBytes);
            File.Move(tmp, full, overwrite: true);
            written = ModelContract.Load(full);
        }
        finally
        {
            File.Delete(tmp);
        }

        EvaluationResult? floatVal = null, quantizedVal = null;
        if (valPath is not null)
        {
            var evaluation = new EvaluationOptions { BatchSize = options.BatchSize };
            floatVal = ModelEvaluator.Evaluate(modelPath, valPath, evaluation, cancellationToken);
            quantizedVal = ModelEvaluator.Evaluate(full, valPath, evaluation, cancellationToken);
        }

        return new QuantizationRun(source, written, agreement, maxChange, images, kernels, floatVal, quantizedVal);
    }

    /// <summary>Images per range-measuring run: every intermediate tensor of the batch is an output then, so memory grows
    /// with it (ConvNeXt-T at 224 px: about 85 MB per image).</summary>
    private const int MeasureBatch = 4;

    /// <summary>Up to <see cref="QuantizationOptions.CalibrationImages"/> readable images, taken in turn from every leaf
    /// (in path order), preprocessed as the daemon does and packed into batches of <see cref="MeasureBatch"/>.</summary>
    private static List<(float[] Data, int Count)> CalibrationBatches(ValidatedModel model, string dataPath, QuantizationOptions options,
        CancellationToken cancellationToken)
    {
        var data = ModelEvaluator.LoadData(dataPath, model.Tree);
        var byLeaf = data.Images.GroupBy(i => i.Leaf).OrderBy(g => g.Key)
            .Select(g => new Queue<LabeledImage>(g.OrderBy(i => i.Path, StringComparer.Ordinal))).ToList();
        var pre = ImagePreprocessor.For(model.Manifest);
        var batches = new List<(float[] Data, int Count)>();
        var current = new float[MeasureBatch * pre.TensorLength];
        var inBatch = 0;
        var taken = 0;
        while (taken < options.CalibrationImages && byLeaf.Any(q => q.Count > 0))
        {
            foreach (var queue in byLeaf.Where(q => q.Count > 0))
            {
                if (taken == options.CalibrationImages)
                {
                    break;
                }

                cancellationToken.ThrowIfCancellationRequested();
                var image = queue.Dequeue();
                try
                {
                    pre.PreprocessFile(image.Path).CopyTo(current.AsSpan(inBatch * pre.TensorLength));
                }
                catch (ImageDecodeException)
                {
                    continue; // a calibration image has to be a real picture; a bad file simply is not one
                }

                taken++;
                if (++inBatch == MeasureBatch)
                {
                    batches.Add((current, inBatch));
                    current = new float[MeasureBatch * pre.TensorLength];
                    inBatch = 0;
                }
            }
        }

        if (inBatch > 0)
        {
            batches.Add((current, inBatch));
        }

        return taken > 0 ? batches : throw new InvalidOperationException($"no readable image in '{dataPath}' to calibrate the activations on");
    }

    /// <summary>Per level, the share of images where both models give the same top-1 class, and the largest change of
    /// any softmax probability (at the manifest's temperatures).</summary>
    private static (double[] Agreement, double MaxChange) Compare(string floatModel, string quantizedModel, int levels,
        IReadOnlyList<(float[] Data, int Count)> batches)
    {
        var cpu = new InferenceOptions { Providers = [ExecutionProviders.Cpu] };
        using var a = OnnxClassifier.Load(floatModel, cpu);
        using var b = OnnxClassifier.Load(quantizedModel, cpu);
        var same = new int[levels];
        var total = 0;
        var maxChange = 0.0;
        foreach (var (data, count) in batches)
        {
            var pa = a.Classify(data, count);
            var pb = b.Classify(data, count);
            for (var i = 0; i < count; i++)
            {
                for (var l = 0; l < levels; l++)
                {
                    var x = pa[i].Probabilities[l];
                    var y = pb[i].Probabilities[l];
                    same[l] += ArgMax(x) == ArgMax(y) ? 1 : 0;
                    for (var c = 0; c < x.Length; c++)
                    {
                        maxChange = Math.Max(maxChange, Math.Abs(x[c] - y[c]));
                    }
                }
            }

            total += count;
        }

        return (same.Select(s => (double)s / total).ToArray(), maxChange);
    }

    private static int ArgMax(float[] p)
    {
        var best = 0;
        for (var i = 1; i < p.Length; i++)
        {
            best = p[i] > p[best] ? i : best;
        }

        return best;
    }

    /// <summary>The operator types in the graph ONNX Runtime's CPU provider runs after its graph optimisations
    /// (where the QDQ groups become int8 kernels), counted.</summary>
    public static IReadOnlyDictionary<string, int> CpuKernels(byte[] model)
    {
        var optimized = Path.Combine(Path.GetTempPath(), $"fma-quantize-{Guid.NewGuid():N}.onnx");
        try
        {
            using (var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_EXTENDED, OptimizedModelFilePath = optimized })
            using (new InferenceSession(model, so))
            {
            }

            return ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph.Node
                .GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count());
        }
        finally
        {
            File.Delete(optimized);
        }
    }
}
