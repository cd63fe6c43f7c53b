using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using FmaEdge.Vision;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Training.Tests;

/// <summary>A real, small ONNX model of the model contract built for evaluation tests while no trained ConvNeXt is
/// available: per-image statistics (mean, mean square, max, min of each channel, as ONNX ops) feed one linear head
/// per level whose weights are a Gaussian nearest-centroid classifier fitted on real training images of the defect
/// set. It runs through ONNX Runtime exactly like a trained model and is clearly better than chance (the materials
/// differ in brightness and contrast), so label mapping, batching, decoding and calibration are tested end to end.
/// Built once per test class into a temp folder.</summary>
public sealed class EvaluationFixture : IDisposable
{
    public const int Size = 48;
    private const int PerLeafTrain = 12;

    public EvaluationFixture()
    {
        Folder = new TempFolder("eval");
        var train = DatasetLoader.ScanFolder(TestPaths.DatasetTrain);
        Tree = train.Tree;
        var manifest = ModelManifest.For(Tree) with
        {
            Model = new ModelInfo { Id = "test-centroid", Version = "1", Architecture = "nearest-centroid", Head = "independent", Loss = "none", CreatedUtc = "2026-11-26T00:00:00Z" },
            Input = new InputSpec { Height = Size, Width = Size },
            Training = new JsonObject { ["recipe"] = "Gaussian nearest centroid on image statistics", ["images_per_leaf"] = PerLeafTrain },
        };
        var pre = ImagePreprocessor.For(manifest);
        var samples = train.Images.GroupBy(i => i.Leaf).SelectMany(g => g.OrderBy(i => i.Path, StringComparer.Ordinal).Take(PerLeafTrain)).ToList();
        var features = samples.Select(s =>
        {
            using var rgb = ImageDecoder.LoadRgb(s.Path);
            return Features(pre.Preprocess(rgb));
        }).ToList();
        ModelPath = Path.Combine(Folder.Path, "centroid.onnx");
        File.WriteAllBytes(ModelPath, Build(manifest, features, samples.Select(s => s.Leaf).ToList(), divideByContrast: false).ToByteArray());
        ModelContract.Load(ModelPath);
        ContrastModelPath = Path.Combine(Folder.Path, "centroid-contrast.onnx");
        File.WriteAllBytes(ContrastModelPath, Build(manifest, features, samples.Select(s => s.Leaf).ToList(), divideByContrast: true).ToByteArray());
        ModelContract.Load(ContrastModelPath);
    }

    /// <summary>The same model with every output divided by the image's contrast (max - min): a flat image makes
    /// it emit NaN/inf, as a numerically fragile real model can.</summary>
    public string ContrastModelPath { get; }

    public TempFolder Folder { get; }

    public CategoryTree Tree { get; }

    /// <summary>The model file (do not modify; copy it first).</summary>
    public string ModelPath { get; }

    /// <summary>A copy of the model in a fresh file, for tests that rewrite it.</summary>
    public string CopyModel()
    {
        var path = Path.Combine(Folder.Path, $"copy-{Guid.NewGuid():N}.onnx");
        File.Copy(ModelPath, path);
        return path;
    }

    /// <summary>The 12 statistics the graph computes, per channel: mean, mean of squares, max, min.</summary>
    public static double[] Features(float[] chw)
    {
        var plane = chw.Length / 3;
        var f = new double[12];
        for (var c = 0; c < 3; c++)
        {
            var s = chw.AsSpan(c * plane, plane);
            double sum = 0, sq = 0, max = double.MinValue, min = double.MaxValue;
            foreach (var v in s)
            {
                sum += v;
                sq += (double)v * v;
                max = Math.Max(max, v);
                min = Math.Min(min, v);
            }

            f[c] = sum / plane;
            f[3 + c] = sq / plane;
            f[6 + c] = max;
            f[9 + c] = min;
        }

        return f;
    }

    private ModelProto Build(ModelManifest manifest, List<double[]> features, List<int> leaves, bool divideByContrast)
    {
        var graph = new GraphProto { Name = "centroid" };
        graph.Input.Add(Value("image", [null, 3, Size, Size]));
        graph.Node.Add(Node("ReduceMean", ["image"], ["mean"], axes: [2, 3]));
        graph.Node.Add(Node("Mul", ["image", "image"], ["sq"]));
        graph.Node.Add(Node("ReduceMean", ["sq"], ["msq"], axes: [2, 3]));
        graph.Node.Add(Node("ReduceMax", ["image"], ["max"], axes: [2, 3]));
        graph.Node.Add(Node("ReduceMin", ["image"], ["min"], axes: [2, 3]));
        var concat = Node("Concat", ["mean", "msq", "max", "min"], ["features"]);
        concat.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        graph.Node.Add(concat);
        if (divideByContrast)
        {
            graph.Node.Add(Node("Sub", ["max", "min"], ["range"]));
            var r = Node("ReduceMax", ["range"], ["contrast"], axes: [1]);
            r.Attribute.Single(a => a.Name == "keepdims").I = 1;
            graph.Node.Add(r);
        }

        // Grayscale images make the three channels equal, so only channel 0's statistics are used.
        int[] used = [0, 3, 6, 9];
        var std = used.Select(j =>
        {
            var mean = features.Average(f => f[j]);
            return Math.Sqrt(features.Average(f => (f[j] - mean) * (f[j] - mean))) + 1e-6;
        }).ToArray();
        foreach (var level in Tree.Levels)
        {
            var c = level.Count;
            var w = new float[12 * c];
            var b = new float[c];
            for (var k = 0; k < c; k++)
            {
                var members = features.Where((_, i) => Tree.AncestorOfLeaf(leaves[i], level.Depth) == k).ToList();
                for (var u = 0; u < used.Length; u++)
                {
                    var mu = members.Average(f => f[used[u]]);
                    var v2 = std[u] * std[u];
                    w[used[u] * c + k] = (float)(mu / v2);
                    b[k] += (float)(-mu * mu / (2 * v2));
                }
            }

            var name = manifest.Outputs[level.Depth].Name;
            graph.Initializer.Add(Tensor($"w{level.Depth}", [12, c], w));
            graph.Initializer.Add(Tensor($"b{level.Depth}", [c], b));
            if (divideByContrast)
            {
                graph.Node.Add(Node("Gemm", ["features", $"w{level.Depth}", $"b{level.Depth}"], [name + "_raw"]));
                graph.Node.Add(Node("Div", [name + "_raw", "contrast"], [name]));
            }
            else
            {
                graph.Node.Add(Node("Gemm", ["features", $"w{level.Depth}", $"b{level.Depth}"], [name]));
            }

            graph.Output.Add(Value(name, [null, c]));
        }

        var model = new ModelProto { IrVersion = 8, ProducerName = "FmaEdge.Training.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        ModelContract.WriteManifest(model, manifest);
        return model;
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, long[]? axes = null)
    {
        var n = new NodeProto { OpType = op, Name = outputs[0] + "_" + op };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        if (axes is not null)
        {
            var a = new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(axes);
            n.Attribute.Add(a);
            n.Attribute.Add(new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        }

        return n;
    }

    private static TensorProto Tensor(string name, long[] dims, float[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        t.FloatData.AddRange(values);
        return t;
    }

    private static ValueInfoProto Value(string name, long?[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    public void Dispose() => Folder.Dispose();
}
