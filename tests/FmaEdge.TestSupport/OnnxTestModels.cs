using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.TestSupport;

/// <summary>Builds small but real ONNX models that follow the FmaEdge contract: image [N,3,H,W] ->
/// GlobalAveragePool -> Flatten -> one Gemm per level (optionally followed by Softmax), with the manifest in
/// the metadata. ONNX Runtime runs them; <see cref="Reference"/> computes what they must output, so tests can
/// check a runtime end to end without a trained model. Stateless and thread-safe.</summary>
public static class OnnxTestModels
{
    /// <summary>Opset the models import (the contract's minimum).</summary>
    public const int Opset = ModelContract.MinOpset;

    /// <summary>IR version matching <see cref="Opset"/> 17.</summary>
    public const long IrVersion = 8;

    /// <summary>ONNX element type code of float32.</summary>
    public const int Float = (int)TensorProto.Types.DataType.Float;

    /// <summary>A 2-level tree with a name used under both parents:
    /// metal{scratch, dent}, paint{bubble, run, scratch}.</summary>
    public static CategoryTree SmallTree() => TaxonomyBuilder.Build(new TaxonomyDocument
    {
        Levels =
        [
            new() { Name = "Material", Classes = [new() { Name = "metal" }, new() { Name = "paint" }] },
            new()
            {
                Name = "Defect",
                Classes =
                [
                    new() { Name = "scratch", Parent = "metal" },
                    new() { Name = "dent", Parent = "metal" },
                    new() { Name = "bubble", Parent = "paint" },
                    new() { Name = "run", Parent = "paint" },
                    new() { Name = "scratch", Parent = "paint" },
                ],
            },
        ],
    });

    /// <summary>A complete manifest for <paramref name="tree"/> with every field set to a plausible value.</summary>
    public static ModelManifest Manifest(CategoryTree tree, int height = 16, int width = 16, string kind = OutputKinds.Logits)
    {
        var m = ModelManifest.For(tree);
        return m with
        {
            Model = new ModelInfo
            {
                Id = "test-gap-gemm",
                Version = "1.0.0",
                CreatedUtc = "2026-01-01T00:00:00Z",
                Architecture = "gap-gemm",
                Head = "independent",
                Loss = "cross-entropy",
            },
            Input = new InputSpec { Height = height, Width = width },
            Outputs = m.Outputs.Select(o => o with { Kind = kind }).ToList(),
        };
    }

    /// <summary>Builds the model described by <paramref name="manifest"/> (which must match
    /// <paramref name="tree"/>); <paramref name="seed"/> picks the weights.</summary>
    public static ModelProto Build(ModelManifest manifest, CategoryTree tree, int seed = 1)
    {
        var g = new GraphProto { Name = "fmaedge_test_gap_gemm" };
        var input = manifest.Input;
        g.Input.Add(Tensor(input.Name, Float, null, input.Channels, input.Height, input.Width));
        g.Node.Add(Node("GlobalAveragePool", [input.Name], ["pooled"]));
        var flatten = Node("Flatten", ["pooled"], ["features"]);
        flatten.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        g.Node.Add(flatten);
        foreach (var spec in manifest.Outputs)
        {
            var classes = tree.Levels[spec.Level].Count;
            var w = new TensorProto { Name = $"w{spec.Level}", DataType = Float, Dims = { input.Channels, classes } };
            var b = new TensorProto { Name = $"b{spec.Level}", DataType = Float, Dims = { classes } };
            for (var r = 0; r < input.Channels; r++)
            {
                for (var c = 0; c < classes; c++)
                {
                    w.FloatData.Add(Weight(seed, spec.Level, r, c));
                }
            }

            for (var c = 0; c < classes; c++)
            {
                b.FloatData.Add(Bias(seed, spec.Level, c));
            }

            g.Initializer.Add(w);
            g.Initializer.Add(b);
            var logits = spec.Kind == OutputKinds.Probabilities ? spec.Name + "_logits" : spec.Name;
            g.Node.Add(Node("Gemm", ["features", w.Name, b.Name], [logits]));
            if (logits != spec.Name)
            {
                var softmax = Node("Softmax", [logits], [spec.Name]);
                softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
                g.Node.Add(softmax);
            }

            g.Output.Add(Tensor(spec.Name, Float, null, classes));
        }

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "FmaEdge.TestSupport",
            ProducerVersion = "1",
            Graph = g,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        ModelContract.WriteManifest(model, manifest);
        return model;
    }

    /// <summary>Builds the small tree's model and writes it to <paramref name="path"/>.</summary>
    public static string WriteSmall(string path, int height = 16, int width = 16, string kind = OutputKinds.Logits)
    {
        var tree = SmallTree();
        return Write(Build(Manifest(tree, height, width, kind), tree), path);
    }

    /// <summary>Serialises a model to a file and returns the path.</summary>
    public static string Write(ModelProto model, string path)
    {
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    /// <summary>What the model built by <see cref="Build"/> outputs for a batch (NCHW floats, n images):
    /// per level, flattened [n * classes], computed independently of any runtime.</summary>
    public static float[][] Reference(ModelManifest manifest, CategoryTree tree, float[] batch, int n, int seed = 1)
    {
        var (ch, h, w) = (manifest.Input.Channels, manifest.Input.Height, manifest.Input.Width);
        var features = new double[n, ch];
        for (var i = 0; i < n; i++)
        {
            for (var c = 0; c < ch; c++)
            {
                double sum = 0;
                var offset = ((i * ch) + c) * h * w;
                for (var k = 0; k < h * w; k++)
                {
                    sum += batch[offset + k];
                }

                features[i, c] = sum / (h * w);
            }
        }

        var result = new float[manifest.Outputs.Count][];
        for (var o = 0; o < manifest.Outputs.Count; o++)
        {
            var spec = manifest.Outputs[o];
            var classes = tree.Levels[spec.Level].Count;
            var outLevel = new float[n * classes];
            for (var i = 0; i < n; i++)
            {
                var row = new double[classes];
                for (var c = 0; c < classes; c++)
                {
                    row[c] = Bias(seed, spec.Level, c);
                    for (var r = 0; r < ch; r++)
                    {
                        row[c] += features[i, r] * Weight(seed, spec.Level, r, c);
                    }
                }

                if (spec.Kind == OutputKinds.Probabilities)
                {
                    var max = row.Max();
                    var exp = row.Select(x => Math.Exp(x - max)).ToArray();
                    var total = exp.Sum();
                    row = exp.Select(x => x / total).ToArray();
                }

                for (var c = 0; c < classes; c++)
                {
                    outLevel[(i * classes) + c] = (float)row[c];
                }
            }

            result[o] = outLevel;
        }

        return result;
    }

    /// <summary>A tensor-typed graph value; a null dimension is dynamic (named "N").</summary>
    public static ValueInfoProto Tensor(string name, int elemType, params long?[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is { } v
                ? new TensorShapeProto.Types.Dimension { DimValue = v }
                : new TensorShapeProto.Types.Dimension { DimParam = "N" });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } },
        };
    }

    /// <summary>A node of the default ONNX domain.</summary>
    public static NodeProto Node(string op, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = op + "_" + outputs[0] };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    // Weights vary with level, row and column so every class gets a different score; the formulas are
    // shared with Reference so expected outputs need no runtime.
    private static float Weight(int seed, int level, int row, int col) =>
        MathF.Sin((seed * 7.1f) + (level * 3.3f) + (row * 1.7f) + (col * 0.9f)) * 2f;

    private static float Bias(int seed, int level, int col) =>
        0.1f * MathF.Cos((seed * 1.3f) + (level * 0.7f) + (col * 2.1f));
}
