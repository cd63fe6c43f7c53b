using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Model files for daemon tests. <see cref="Real"/> is the trainer's model when it is in models/; until then
/// (and for hot-swap, which needs several distinct models) <see cref="Create"/> writes a small contract-valid model on
/// the real dataset's taxonomy: global average pool then one linear layer per level, weights from a seed.</summary>
public static class TestModels
{
    private static readonly Lazy<CategoryTree> Tree = new(() => DatasetLoader.ScanFolder(TestPaths.DatasetTrain).Tree);

    /// <summary>The real trained model when shipped, else a generated one (seed 0) in a cache folder.</summary>
    public static string Real
    {
        get
        {
            if (File.Exists(TestPaths.DemoModel))
            {
                return TestPaths.DemoModel;
            }

            var path = Path.Combine(Path.GetTempPath(), "fmaedge-daemon-tests-model", "generated-seed0.onnx");
            if (!File.Exists(path))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                var tmp = path + $".{Guid.NewGuid():N}.tmp";
                File.WriteAllBytes(tmp, CreateBytes(0));
                File.Move(tmp, path, overwrite: true);
            }

            return path;
        }
    }

    /// <summary>Writes a generated model; different seeds give different weights (and hashes).</summary>
    public static string Create(string path, int seed, int size = 64)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, CreateBytes(seed, size));
        return path;
    }

    /// <summary>The bytes of a generated model.</summary>
    public static byte[] CreateBytes(int seed, int size = 64)
    {
        var tree = Tree.Value;
        var rng = new Random(seed);
        var graph = new GraphProto { Name = "fmaedge-test" };
        graph.Input.Add(Value("image", [null, 3, size, size]));
        graph.Node.Add(new NodeProto { OpType = "GlobalAveragePool", Input = { "image" }, Output = { "pooled" }, Name = "gap" });
        graph.Node.Add(new NodeProto
        {
            OpType = "Flatten",
            Input = { "pooled" },
            Output = { "flat" },
            Name = "flatten",
            Attribute = { new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 } },
        });
        var manifest = ModelManifest.For(tree) with
        {
            Model = new ModelInfo { Id = $"test-gap-linear-s{seed}", Version = "1", Architecture = "gap-linear", CreatedUtc = "2026-01-01T00:00:00Z" },
            Input = new InputSpec { Name = "image", Channels = 3, Height = size, Width = size },
        };
        foreach (var level in tree.Levels)
        {
            var c = level.Count;
            var w = new TensorProto { Name = $"w{level.Depth}", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 3, c } };
            for (var i = 0; i < 3 * c; i++)
            {
                w.FloatData.Add((float)(rng.NextDouble() * 4 - 2));
            }

            var b = new TensorProto { Name = $"b{level.Depth}", DataType = (int)TensorProto.Types.DataType.Float, Dims = { c } };
            for (var i = 0; i < c; i++)
            {
                b.FloatData.Add((float)(rng.NextDouble() - 0.5));
            }

            graph.Initializer.Add(w);
            graph.Initializer.Add(b);
            var output = manifest.Outputs[level.Depth].Name;
            graph.Node.Add(new NodeProto { OpType = "Gemm", Input = { "flat", w.Name, b.Name }, Output = { output }, Name = $"head{level.Depth}" });
            graph.Output.Add(Value(output, [null, c]));
        }

        var model = new ModelProto { IrVersion = 9, ProducerName = "fmaedge-daemon-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        ModelContract.WriteManifest(model, manifest);
        return model.ToByteArray();
    }

    private static ValueInfoProto Value(string name, long?[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = "N" });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
