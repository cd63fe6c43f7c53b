using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Inference;
using FmaEdge.Training.Models;
using FmaEdge.Vision;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace FmaEdge.Training.Export;

/// <summary>What the exporter writes into the manifest besides the tree and shapes. Immutable.</summary>
public sealed record ExportDescription
{
    public string Id { get; init; } = "";
    public string Version { get; init; } = "1";
    public string Loss { get; init; } = "ce";
    public PreprocessSpec Preprocess { get; init; } = new();

    /// <summary>Free-form training summary embedded as manifest.training.</summary>
    public JsonObject? Training { get; init; }
}

/// <summary>A verified export: where it went, how close ONNX Runtime came to TorchSharp, the validated model.</summary>
public sealed record ExportResult(string Path, double MaxAbsDifference, int VerifiedImages, ValidatedModel Model);

/// <summary>The export failed verification (contract or numerical parity); nothing was written at the target.</summary>
public sealed class ExportVerificationException(string message) : Exception(message);

/// <summary>Writes a <see cref="HierarchicalClassifier"/> as one self-describing ONNX file (opset 17, dynamic batch,
/// manifest embedded), then proves it: the file must pass <see cref="ModelContract.Validate(string)"/> and ONNX
/// Runtime must reproduce TorchSharp's eval output within the tolerance on real images. Written to a temp file
/// and renamed into place, so readers never see a half-written or unverified model. Stateless; not safe to
/// call concurrently on the same model instance.</summary>
public static class OnnxExporter
{
    /// <summary>Largest accepted |ORT - TorchSharp| on any logit.</summary>
    public const double DefaultTolerance = 1e-4;

    /// <summary>Builds the manifest for a model (path scoring "leaf" for flat heads, "product" otherwise).</summary>
    public static ModelManifest BuildManifest(HierarchicalClassifier model, CategoryTree tree, ExportDescription d)
    {
        var m = ModelManifest.For(tree);
        var size = model.Config.ImageSize;
        return m with
        {
            Model = new ModelInfo
            {
                Id = string.IsNullOrWhiteSpace(d.Id) ? $"{model.Config.Model}-{model.Config.Head}-{size}" : d.Id,
                Version = d.Version,
                CreatedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
                Architecture = model.Config.Model,
                Head = model.Config.Head,
                Loss = d.Loss,
            },
            Input = new InputSpec { Name = ModelGraph.InputName, Height = size, Width = size },
            Outputs = tree.Levels.Select(l => new OutputSpec { Name = ModelGraph.OutputName(l.Depth), Level = l.Depth }).ToList(),
            Preprocess = d.Preprocess,
            Decoding = m.Decoding with { PathScoring = model.HeadKind == HeadKind.Flat ? PathScorings.Leaf : PathScorings.Product },
            Training = d.Training,
        };
    }

    /// <summary>Builds the ONNX model proto with the manifest embedded.</summary>
    public static ModelProto BuildModel(HierarchicalClassifier model, ModelManifest manifest)
    {
        var proto = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "fma-train",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = ModelGraph.Build(model),
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = ModelGraph.Opset });
        ModelContract.WriteManifest(proto, manifest);
        return proto;
    }

    /// <summary>Exports and verifies on the given real images (preprocessed with the manifest's preprocessing;
    /// unreadable ones skipped; at least one must decode).</summary>
    public static ExportResult Export(HierarchicalClassifier model, CategoryTree tree, ExportDescription description, string outPath,
        IReadOnlyList<string> verifyImages, double tolerance = DefaultTolerance)
    {
        var pre = new ImagePreprocessor(description.Preprocess, model.Config.ImageSize, model.Config.ImageSize);
        var batch = new List<float>();
        var n = 0;
        foreach (var path in verifyImages)
        {
            try
            {
                batch.AddRange(pre.PreprocessFile(path));
                n++;
            }
            catch (ImageDecodeException)
            {
                // Verification needs real pixels; a bad file is simply not one of them.
            }
        }

        if (n == 0)
        {
            throw new ExportVerificationException("no verification image could be read; export needs real images to check parity");
        }

        return Export(model, tree, description, outPath, batch.ToArray(), n, tolerance);
    }

    /// <summary>Exports and verifies on an already preprocessed batch (<paramref name="n"/> x 3 x S x S floats).</summary>
    public static ExportResult Export(HierarchicalClassifier model, CategoryTree tree, ExportDescription description, string outPath,
        float[] verifyBatch, int n, double tolerance = DefaultTolerance)
    {
        var manifest = BuildManifest(model, tree, description);
        var proto = BuildModel(model, manifest);
        var full = Path.GetFullPath(outPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $".tmp-{Guid.NewGuid():N}";
        try
        {
            using (var fs = File.Create(tmp))
            {
                proto.WriteTo(fs);
                fs.Flush(flushToDisk: true);
            }

            var report = ModelContract.Validate(tmp);
            if (!report.IsValid)
            {
                throw new ExportVerificationException("exported model breaks the contract:\n  - " + string.Join("\n  - ", report.Violations));
            }

            var maxDiff = CompareWithOnnxRuntime(model, tmp, verifyBatch, n, tolerance);
            File.Move(tmp, full, overwrite: true);
            return new ExportResult(full, maxDiff, n, report.Model! with { Path = full });
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    /// <summary>Runs both engines on the batch; throws when any logit differs by more than the tolerance.</summary>
    private static double CompareWithOnnxRuntime(HierarchicalClassifier model, string onnxPath, float[] batch, int n, double tolerance)
    {
        var size = model.Config.ImageSize;
        var wasTraining = model.training;
        model.eval();
        float[][] expected;
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var device = model.parameters().First().device;
            var input = tensor(batch.AsSpan(0, n * 3 * size * size).ToArray(), [n, 3, size, size]).to(device);
            expected = model.forward(input).Select(t => t.cpu().contiguous().data<float>().ToArray()).ToArray();
        }
        finally
        {
            model.train(wasTraining);
        }

        using var ort = OnnxClassifier.Load(onnxPath, new InferenceOptions { Providers = [ExecutionProviders.Cpu] });
        var actual = ort.Run(batch, n);
        double maxDiff = 0;
        for (var l = 0; l < expected.Length; l++)
        {
            if (actual[l].Length != expected[l].Length)
            {
                throw new ExportVerificationException($"level {l}: ONNX Runtime gave {actual[l].Length} values, TorchSharp {expected[l].Length}");
            }

            for (var i = 0; i < expected[l].Length; i++)
            {
                var d = Math.Abs((double)actual[l][i] - expected[l][i]);
                if (!(d <= tolerance))
                {
                    throw new ExportVerificationException(
                        $"ONNX Runtime and TorchSharp disagree at level {l}, value {i}: {actual[l][i]} vs {expected[l][i]} (tolerance {tolerance})");
                }

                maxDiff = Math.Max(maxDiff, d);
            }
        }

        return maxDiff;
    }
}
