using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace FmaEdge.Training.Export;

/// <summary>Accumulates an ONNX graph: float initializers, nodes with attributes, unique value names.
/// One builder per export; not thread-safe.</summary>
internal sealed class OnnxGraphBuilder
{
    private int _counter;

    public GraphProto Graph { get; } = new() { Name = "fmaedge" };

    /// <summary>A fresh value name with a readable prefix.</summary>
    public string Fresh(string hint) => $"{hint}_{_counter++}";

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
