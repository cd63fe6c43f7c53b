using System.Numerics.Tensors;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace FmaEdge.Training.Quantization;

/// <summary>Measures the range of activation tensors on real images by running the float model with those tensors
/// as extra outputs (ONNX Runtime, CPU), and turns each range into a scale and zero point. Min/max needs one pass;
/// the percentile method a second one that histograms every tensor over its min/max range (2,048 bins) and keeps the
/// given share of values on each side, as ONNX Runtime's own percentile calibrator does. Stateless.</summary>
internal static class ActivationRanges
{
    private const int Bins = 2048;

    /// <summary>Scale and zero point for every tensor in <paramref name="tensors"/>, measured over the preprocessed
    /// <paramref name="batches"/> (each n x 3 x H x W floats).</summary>
    public static Dictionary<string, TensorQuantization> Measure(ModelProto model, string inputName, int height, int width,
        IReadOnlyList<string> tensors, IReadOnlyList<(float[] Data, int Count)> batches, QuantizationOptions options, CancellationToken cancellationToken)
    {
        // The image input itself is measured from the batches; every other tensor is fetched from the run.
        var fetched = tensors.Where(t => t != inputName).ToList();
        var augmented = QdqGraph.WithExtraOutputs(model, fetched).ToByteArray();
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC };
        using var session = new InferenceSession(augmented, so);
        var passes = options.Method == RangeMethod.Percentile ? 2 : 1;
        var total = batches.Count * passes;
        var min = tensors.ToDictionary(t => t, _ => float.PositiveInfinity);
        var max = tensors.ToDictionary(t => t, _ => float.NegativeInfinity);
        var histograms = tensors.ToDictionary(t => t, _ => new long[Bins]);
        var done = 0;
        for (var pass = 0; pass < passes; pass++)
        {
            foreach (var (data, count) in batches)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var input = new DenseTensor<float>(data.AsMemory(0, count * 3 * height * width), [count, 3, height, width]);
                using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, input)], fetched);
                var observed = results.Select(r => (r.Name, Values: (ReadOnlyMemory<float>)((DenseTensor<float>)r.AsTensor<float>()).Buffer)).ToList();
                if (min.ContainsKey(inputName))
                {
                    observed.Add((inputName, input.Buffer));
                }

                // One tensor per task: every tensor has its own entries, and the model is not running meanwhile.
                var current = pass;
                Parallel.ForEach(observed, o =>
                {
                    var values = o.Values.Span;
                    if (current == 0)
                    {
                        lock (min)
                        {
                            (min[o.Name], max[o.Name]) = (Math.Min(min[o.Name], TensorPrimitives.Min(values)), Math.Max(max[o.Name], TensorPrimitives.Max(values)));
                        }
                    }
                    else
                    {
                        Histogram(values, min[o.Name], max[o.Name], histograms[o.Name]);
                    }
                });

                options.Progress?.Report((++done, total));
            }
        }

        var result = new Dictionary<string, TensorQuantization>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!float.IsFinite(min[t]) || !float.IsFinite(max[t]))
            {
                throw new InvalidOperationException($"activation '{t}' took non-finite values on the calibration images; the model cannot be quantized");
            }

            var (lo, hi) = options.Method == RangeMethod.Percentile
                ? Clip(histograms[t], min[t], max[t], options.Percentile)
                : (min[t], max[t]);
            result[t] = ToQuantization(lo, hi, options.Activations);
        }

        return result;
    }

    /// <summary>The scale and zero point covering [lo, hi] (always including 0, so zero is exact).</summary>
    public static TensorQuantization ToQuantization(float lo, float hi, ActivationScheme scheme)
    {
        lo = Math.Min(lo, 0);
        hi = Math.Max(hi, 0);
        if (scheme == ActivationScheme.Int8Symmetric)
        {
            var amax = Math.Max(-lo, hi);
            return new TensorQuantization(amax > 0 ? amax / 127f : 1f, 0);
        }

        var scale = hi > lo ? (hi - lo) / 255f : 1f;
        return new TensorQuantization(scale, (int)Math.Clamp(MathF.Round(-lo / scale), 0, 255));
    }

    private static void Histogram(ReadOnlySpan<float> values, float lo, float hi, long[] bins)
    {
        var width = (hi - lo) / Bins;
        if (!(width > 0))
        {
            bins[0] += values.Length;
            return;
        }

        // Bin indices computed a chunk at a time with SIMD; only the counting is scalar.
        Span<float> scaled = stackalloc float[1024];
        Span<int> index = stackalloc int[1024];
        for (var start = 0; start < values.Length; start += scaled.Length)
        {
            var chunk = values.Slice(start, Math.Min(scaled.Length, values.Length - start));
            var s = scaled[..chunk.Length];
            var ix = index[..chunk.Length];
            TensorPrimitives.Subtract(chunk, lo, s);
            TensorPrimitives.Multiply(s, 1f / width, s);
            TensorPrimitives.Max(s, 0f, s);
            TensorPrimitives.Min(s, Bins - 1, s);
            TensorPrimitives.ConvertTruncating(s, ix);
            foreach (var i in ix)
            {
                bins[i]++;
            }
        }
    }

    /// <summary>The values at (100 - p)% and p% of the histogram (bin edges, widened outward).</summary>
    private static (float Lo, float Hi) Clip(long[] bins, float lo, float hi, double percentile)
    {
        var total = bins.Sum();
        var tail = (long)Math.Floor(total * (100 - percentile) / 100);
        var width = (hi - lo) / Bins;
        long seen = 0;
        var first = 0;
        while (first < Bins - 1 && seen + bins[first] <= tail)
        {
            seen += bins[first++];
        }

        seen = 0;
        var last = Bins - 1;
        while (last > first && seen + bins[last] <= tail)
        {
            seen += bins[last--];
        }

        return (lo + (first * width), lo + ((last + 1) * width));
    }
}
