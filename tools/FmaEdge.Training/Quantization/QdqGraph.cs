using Google.Protobuf;
using Onnx;

namespace FmaEdge.Training.Quantization;

/// <summary>One operator that can run in int8: a Conv or MatMul whose weight is a float initializer.
/// <paramref name="WeightAxis"/> is the weight's output-channel axis (0 for Conv [O, I, kh, kw], 1 for MatMul [K, N]).</summary>
internal sealed record QuantizableNode(NodeProto Node, string Activation, string Weight, string? Bias, int WeightAxis)
{
    public string Output => Node.Output[0];
}

/// <summary>A scale and zero point for one activation tensor.</summary>
internal readonly record struct TensorQuantization(float Scale, int ZeroPoint);

/// <summary>The graph side of static quantization in QDQ form, as ONNX Runtime's own quantizer writes it: every
/// quantized operator reads its activation and weight through DequantizeLinear and its output goes through a
/// QuantizeLinear/DequantizeLinear pair, so ONNX Runtime can fuse each group into one int8 kernel (QLinearConv,
/// QLinearMatMul) and TensorRT reads the same pairs as explicit quantization. Weights are int8, symmetric, one scale
/// per output channel; a Conv bias is int32 with scale = input scale x weight scale (what the fused kernel adds).
/// Everything else (LayerNorm, GELU, Softmax, the heads by default) stays float. Pure functions.</summary>
internal static class QdqGraph
{
    /// <summary>The operators to quantize, in graph order, and those deliberately left float. A "last" operator is one
    /// with no quantizable operator anywhere after it (the classifier heads); it stays float unless
    /// <paramref name="includeLast"/>.</summary>
    public static (IReadOnlyList<QuantizableNode> Quantize, IReadOnlyList<QuantizableNode> KeptFloat) Find(GraphProto graph, bool includeLast)
    {
        var weights = graph.Initializer.Where(IsFloat).ToDictionary(i => i.Name);
        var candidates = new List<QuantizableNode>();
        foreach (var node in graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx") || node.Input.Count < 2 || weights.ContainsKey(node.Input[0]))
            {
                continue;
            }

            if (node.OpType == "Conv" && weights.TryGetValue(node.Input[1], out var w) && w.Dims.Count == 4)
            {
                var bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
                if (bias is null || weights.ContainsKey(bias))
                {
                    candidates.Add(new QuantizableNode(node, node.Input[0], node.Input[1], bias, 0));
                }
            }
            else if (node.OpType == "MatMul" && weights.TryGetValue(node.Input[1], out var m) && m.Dims.Count == 2)
            {
                candidates.Add(new QuantizableNode(node, node.Input[0], node.Input[1], null, 1));
            }
        }

        if (includeLast)
        {
            return (candidates, []);
        }

        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input)
            {
                if (!consumers.TryGetValue(input, out var list))
                {
                    consumers[input] = list = [];
                }

                list.Add(node);
            }
        }

        var candidateNodes = candidates.Select(c => c.Node).ToHashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        bool FeedsAnotherCandidate(QuantizableNode c)
        {
            var seen = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
            var stack = new Stack<string>(c.Node.Output);
            while (stack.Count > 0)
            {
                foreach (var next in consumers.GetValueOrDefault(stack.Pop()) ?? [])
                {
                    if (candidateNodes.Contains(next))
                    {
                        return true;
                    }

                    if (seen.Add(next))
                    {
                        foreach (var o in next.Output)
                        {
                            stack.Push(o);
                        }
                    }
                }
            }

            return false;
        }

        var quantize = new List<QuantizableNode>();
        var kept = new List<QuantizableNode>();
        foreach (var c in candidates)
        {
            (FeedsAnotherCandidate(c) ? quantize : kept).Add(c);
        }

        return (quantize, kept);
    }

    /// <summary>The activation tensors that need ranges: each quantized operator's input, and a Conv's output (ONNX
    /// Runtime's QLinearConv produces int8). A MatMul's output stays float: ONNX Runtime then runs it as
    /// MatMulIntegerToFloat, which saves a quantize/dequantize pass over the widest tensors (the 4x MLP), and TensorRT
    /// places Q/DQ on inputs anyway.</summary>
    public static IReadOnlyList<string> ActivationTensors(IReadOnlyList<QuantizableNode> nodes) =>
        nodes.SelectMany(n => n.Node.OpType == "Conv" ? new[] { n.Activation, n.Output } : [n.Activation]).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>A copy of <paramref name="model"/> that also outputs <paramref name="tensors"/> (float, any shape), for
    /// measuring their ranges.</summary>
    public static ModelProto WithExtraOutputs(ModelProto model, IEnumerable<string> tensors)
    {
        var copy = model.Clone();
        var existing = copy.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var t in tensors.Where(t => !existing.Contains(t)))
        {
            copy.Graph.Output.Add(new ValueInfoProto
            {
                Name = t,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        }

        return copy;
    }

    /// <summary>Rewrites <paramref name="model"/> in place into QDQ form for <paramref name="nodes"/>, with the given
    /// activation scales (every tensor of <see cref="ActivationTensors"/> must have one).</summary>
    public static void Rewrite(ModelProto model, IReadOnlyList<QuantizableNode> nodes, IReadOnlyDictionary<string, TensorQuantization> activations,
        ActivationScheme scheme)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(i => i.Name);
        var activationType = scheme == ActivationScheme.Int8Symmetric ? TensorProto.Types.DataType.Int8 : TensorProto.Types.DataType.Uint8;
        var prologue = new List<NodeProto>();
        var added = new List<TensorProto>();
        var counter = 0;
        NodeProto NewNode(string op, string[] inputs, string output, long? axis = null)
        {
            var n = new NodeProto { OpType = op, Name = $"qdq_{op}_{counter++}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            if (axis is { } a)
            {
                n.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = a });
            }

            return n;
        }

        // Activations: one QuantizeLinear/DequantizeLinear pair per tensor; every consumer reads the dequantized copy.
        var dequantized = new Dictionary<string, string>(StringComparer.Ordinal);
        var pairs = new Dictionary<string, NodeProto[]>(StringComparer.Ordinal);
        foreach (var t in ActivationTensors(nodes))
        {
            var q = activations[t];
            var scale = Scalar($"{t}_scale", TensorProto.Types.DataType.Float, BitConverter.GetBytes(q.Scale));
            var zero = Scalar($"{t}_zero_point", activationType, [unchecked((byte)q.ZeroPoint)]);
            added.Add(scale);
            added.Add(zero);
            dequantized[t] = $"{t}_dequantized";
            pairs[t] =
            [
                NewNode("QuantizeLinear", [t, scale.Name, zero.Name], $"{t}_quantized"),
                NewNode("DequantizeLinear", [$"{t}_quantized", scale.Name, zero.Name], dequantized[t]),
            ];
        }

        // Weights (int8, per output channel) and Conv biases (int32, scale = input scale x weight scale).
        var weightScales = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            if (!weightScales.TryGetValue(n.Weight, out var weightScale))
            {
                var (values, scales) = QuantizeWeight(initializers[n.Weight], n.WeightAxis);
                weightScales[n.Weight] = weightScale = scales;
                var w = initializers[n.Weight];
                var q = new TensorProto { Name = $"{n.Weight}_quantized", DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(values) };
                q.Dims.AddRange(w.Dims);
                var s = Vector($"{n.Weight}_scale", TensorProto.Types.DataType.Float, scales.Length, FloatBytes(scales));
                var z = Vector($"{n.Weight}_zero_point", TensorProto.Types.DataType.Int8, scales.Length, new byte[scales.Length]);
                added.AddRange([q, s, z]);
                prologue.Add(NewNode("DequantizeLinear", [q.Name, s.Name, z.Name], $"{n.Weight}_dequantized", n.WeightAxis));
            }

            if (n.Bias is { } bias)
            {
                var inputScale = activations[n.Activation].Scale;
                var scales = weightScale.Select(ws => inputScale * ws).ToArray();
                var b = ReadFloats(initializers[bias]);
                var q = new int[b.Length];
                for (var i = 0; i < b.Length; i++)
                {
                    q[i] = (int)Math.Clamp(Math.Round(b[i] / (double)scales[i]), int.MinValue, int.MaxValue);
                }

                var name = $"{bias}_for_{n.Output}";
                var qb = Vector($"{name}_quantized", TensorProto.Types.DataType.Int32, q.Length, IntBytes(q));
                var s = Vector($"{name}_scale", TensorProto.Types.DataType.Float, scales.Length, FloatBytes(scales));
                var z = Vector($"{name}_zero_point", TensorProto.Types.DataType.Int32, scales.Length, new byte[scales.Length * 4]);
                added.AddRange([qb, s, z]);
                prologue.Add(NewNode("DequantizeLinear", [qb.Name, s.Name, z.Name], $"{name}_dequantized", 0));
            }
        }

        var rewired = nodes.ToDictionary<QuantizableNode, NodeProto>(n => n.Node, ReferenceEqualityComparer.Instance); // protobuf messages compare by value, and these change
        var graphInputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var result = new List<NodeProto>(prologue);
        foreach (var t in pairs.Keys.Where(graphInputs.Contains))
        {
            result.AddRange(pairs[t]);
        }

        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                if (dequantized.TryGetValue(node.Input[i], out var d))
                {
                    node.Input[i] = d;
                }
            }

            if (rewired.TryGetValue(node, out var qn))
            {
                node.Input[1] = $"{qn.Weight}_dequantized";
                if (qn.Bias is { } bias)
                {
                    node.Input[2] = $"{bias}_for_{qn.Output}_dequantized";
                }
            }

            result.Add(node);
            foreach (var o in node.Output.Where(pairs.ContainsKey))
            {
                result.AddRange(pairs[o]);
            }
        }

        graph.Node.Clear();
        graph.Node.AddRange(result);
        graph.Initializer.AddRange(added);

        // Float weights no node reads any more are dropped (that is where the file shrinks).
        var used = graph.Node.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        foreach (var unused in graph.Initializer.Where(i => !used.Contains(i.Name)).ToList())
        {
            graph.Initializer.Remove(unused);
        }
    }

    /// <summary>Symmetric int8 per output channel: scale = max |w| / 127, values in [-127, 127].</summary>
    public static (byte[] Values, float[] Scales) QuantizeWeight(TensorProto weight, int axis)
    {
        var w = ReadFloats(weight);
        var dims = weight.Dims.ToArray();
        var channels = (int)dims[axis];
        var inner = 1L;
        for (var d = axis + 1; d < dims.Length; d++)
        {
            inner *= dims[d];
        }

        int Channel(long i) => (int)(i / inner % channels);
        var maxAbs = new float[channels];
        for (long i = 0; i < w.Length; i++)
        {
            maxAbs[Channel(i)] = Math.Max(maxAbs[Channel(i)], Math.Abs(w[i]));
        }

        var scales = maxAbs.Select(m => m > 0 ? m / 127f : 1f).ToArray();
        var values = new byte[w.Length];
        for (long i = 0; i < w.Length; i++)
        {
            values[i] = (byte)(sbyte)Math.Clamp(MathF.Round(w[i] / scales[Channel(i)], MidpointRounding.ToEven), -127, 127);
        }

        return (values, scales);
    }

    /// <summary>A float initializer's values (raw_data or float_data).</summary>
    public static float[] ReadFloats(TensorProto t)
    {
        if (!t.RawData.IsEmpty)
        {
            var values = new float[t.RawData.Length / sizeof(float)];
            Buffer.BlockCopy(t.RawData.ToByteArray(), 0, values, 0, values.Length * sizeof(float));
            return values;
        }

        return [.. t.FloatData];
    }

    private static bool IsFloat(TensorProto t) => t.DataType == (int)TensorProto.Types.DataType.Float;

    private static TensorProto Scalar(string name, TensorProto.Types.DataType type, byte[] raw) =>
        new() { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };

    private static TensorProto Vector(string name, TensorProto.Types.DataType type, int length, byte[] raw)
    {
        var t = Scalar(name, type, raw);
        t.Dims.Add(length);
        return t;
    }

    private static byte[] FloatBytes(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }

    private static byte[] IntBytes(int[] values)
    {
        var bytes = new byte[values.Length * sizeof(int)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
