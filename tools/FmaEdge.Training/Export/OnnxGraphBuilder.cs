using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace FmaEdge.Training.Export;

/// <summary>Accumulates an ONNX graph for one model: float initializers named as the model registers its tensors, nodes
/// with attributes, unique value names. One builder per export; not thread-safe.</summary>
internal sealed class OnnxGraphBuilder
{
    private readonly Dictionary<IntPtr, string> _registeredNames = [];
    private int _counter;

    /// <summary>A builder for <paramref name="model"/>: its parameters and buffers become initializers under the names
    /// its state dict uses, so the graph and checkpoints name every weight alike.</summary>
    public OnnxGraphBuilder(nn.Module model)
    {
        foreach (var (name, p) in model.named_parameters())
        {
            _registeredNames[p.Handle] = name;
        }

        foreach (var (name, b) in model.named_buffers())
        {
            _registeredNames[b.Handle] = name;
        }
    }

    public GraphProto Graph { get; } = new() { Name = "fmaedge" };

    /// <summary>A fresh value name with a readable prefix.</summary>
    public string Fresh(string hint) => $"{hint}_{_counter++}";

    /// <summary>The name the model registered <paramref name="t"/> under (its state-dict name).</summary>
    public string NameOf(Tensor t) => _registeredNames.TryGetValue(t.Handle, out var name)
        ? name
        : throw new InvalidOperationException("the graph reads a tensor the model does not register; register it so it has a name");

    /// <summary>Adds one of the model's tensors as an initializer under its registered name.</summary>
    public string Weight(Tensor t) => Initializer(NameOf(t), t);

    /// <summary>Adds a float initializer copied from a tensor (detached, on CPU, contiguous).</summary>
    public string Initializer(string name, Tensor t)
    {
        using var c = t.detach().cpu().to(ScalarType.Float32).contiguous();
        var data = c.data<float>().ToArray();
        return Initializer(name, data, c.shape);
    }

    /// <summary>Adds a float initializer from raw values.</summary>
    public string Initializer(string name, float[] data, long[] dims)
    {
        var tp = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tp.Dims.AddRange(dims);
        var bytes = new byte[data.Length * sizeof(float)];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        tp.RawData = ByteString.CopyFrom(bytes);
        Graph.Initializer.Add(tp);
        return name;
    }

    /// <summary>Adds an int64 initializer (shapes, axes).</summary>
    public string Int64Initializer(string name, long[] data)
    {
        var tp = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tp.Dims.Add(data.Length);
        tp.Int64Data.AddRange(data);
        Graph.Initializer.Add(tp);
        return name;
    }

    /// <summary>A scalar (rank-0) int64 constant, added once per name (indices for Gather).</summary>
    public string Int64Scalar(string name, long value)
    {
        if (Graph.Initializer.All(i => i.Name != name))
        {
            var tp = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            tp.Int64Data.Add(value);
            Graph.Initializer.Add(tp);
        }

        return name;
    }

    /// <summary>A scalar float constant (shared by name).</summary>
    public string Scalar(float value)
    {
        var name = "const_" + BitConverter.SingleToInt32Bits(value).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        if (Graph.Initializer.All(i => i.Name != name))
        {
            Initializer(name, [value], []);
        }

        return name;
    }

    /// <summary>Adds a node; returns its (single) output name.</summary>
    public string Node(string op, string[] inputs, string? output = null, params AttributeProto[] attributes)
    {
        output ??= Fresh(op.ToLowerInvariant());
        var node = new NodeProto { OpType = op, Name = Fresh("n_" + op) };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return output;
    }

    /// <summary>Exact GELU as opset 17 has no Gelu op: 0.5 * x * (1 + erf(x / sqrt 2)).</summary>
    public string Gelu(string x)
    {
        var scaled = Node("Div", [x, Scalar(MathF.Sqrt(2f))]);
        var erf = Node("Erf", [scaled]);
        var plus1 = Node("Add", [erf, Scalar(1f)]);
        var prod = Node("Mul", [x, plus1]);
        return Node("Mul", [prod, Scalar(0.5f)]);
    }

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A float tensor value description; null dims are dynamic (named by <paramref name="dynamicName"/>).</summary>
    public static ValueInfoProto FloatValue(string name, long?[] dims, string dynamicName = "N")
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = dynamicName });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
