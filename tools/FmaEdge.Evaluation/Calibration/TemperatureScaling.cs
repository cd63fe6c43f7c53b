namespace FmaEdge.Evaluation.Calibration;

/// <summary>The outcome of fitting one level's temperature: the temperature and the held-out NLL before (T = 1)
/// and after. Immutable.</summary>
public sealed record TemperatureFit(double Temperature, double NllBefore, double NllAfter);

/// <summary>Fits a softmax temperature per level by minimising the negative log-likelihood of held-out scores
/// (Guo et al. 2017). Stateless and thread-safe.</summary>
/// <remarks>With beta = 1/T the NLL of softmax(z * beta) is convex in beta (log-sum-exp of a linear function minus
/// a linear function), so it is unimodal in log T and a golden-section search on log T over
/// [<see cref="MinTemperature"/>, <see cref="MaxTemperature"/>] finds the minimum without gradients or a
/// learning rate. Probability outputs are scored as logits log p, which is exactly how the decoder applies a
/// temperature to them (p^(1/T), renormalised).</remarks>
public static class TemperatureScaling
{
    public const double MinTemperature = 0.05;
    public const double MaxTemperature = 20.0;

    /// <summary>Mean NLL (nats) of the true classes under softmax(scores / T); 0 for no samples.</summary>
    public static double Nll(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels, double temperature, bool outputsAreLogits = true)
    {
        Check(scores, labels);
        if (!(temperature > 0) || !double.IsFinite(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be a positive number");
        }

        if (scores.Count == 0)
        {
            return 0;
        }

        double total = 0;
        for (var i = 0; i < scores.Count; i++)
        {
            total += SampleNll(scores[i], labels[i], 1.0 / temperature, outputsAreLogits);
        }

        return total / scores.Count;
    }

    /// <summary>Finds the temperature in [min, max] with the lowest NLL; returns T = 1 when there are no samples
    /// or no temperature improves on it (e.g. constant scores).</summary>
    public static TemperatureFit Fit(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels, bool outputsAreLogits = true,
        double min = MinTemperature, double max = MaxTemperature, double tolerance = 1e-5)
    {
        Check(scores, labels);
        if (!(min > 0) || !(max > min))
        {
            throw new ArgumentOutOfRangeException(nameof(min), $"need 0 < min < max, got [{min}, {max}]");
        }

        var before = Nll(scores, labels, 1.0, outputsAreLogits);
        if (scores.Count == 0)
        {
            return new TemperatureFit(1.0, 0, 0);
        }

        double F(double logT) => Nll(scores, labels, Math.Exp(logT), outputsAreLogits);

        var invPhi = (Math.Sqrt(5) - 1) / 2;
        double a = Math.Log(min), b = Math.Log(max);
        var c = b - invPhi * (b - a);
        var d = a + invPhi * (b - a);
        double fc = F(c), fd = F(d);
        while (b - a > tolerance)
        {
            if (fc <= fd)
            {
                b = d;
                d = c;
                fd = fc;
                c = b - invPhi * (b - a);
                fc = F(c);
            }
            else
            {
                a = c;
                c = d;
                fc = fd;
                d = a + invPhi * (b - a);
                fd = F(d);
            }
        }

        // The interval ends are candidates too: the minimum may sit on the search bound.
        var best = (a + b) / 2;
        var bestNll = F(best);
        foreach (var x in new[] { Math.Log(min), Math.Log(max) })
        {
            var fx = F(x);
            if (fx < bestNll)
            {
                (best, bestNll) = (x, fx);
            }
        }

        // Rounding noise on a flat NLL (e.g. constant scores) must not move T away from 1.
        return bestNll < before - 1e-9 * Math.Max(1, before) ? new TemperatureFit(Math.Exp(best), before, bestNll) : new TemperatureFit(1.0, before, before);
    }

    private static double SampleNll(float[] s, int y, double beta, bool logits)
    {
        // z = logit (or log p) * beta; NLL = logsumexp(z) - z_y, computed stably in double.
        var max = double.NegativeInfinity;
        for (var j = 0; j < s.Length; j++)
        {
            max = Math.Max(max, Score(s[j], logits) * beta);
        }

        double sum = 0;
        for (var j = 0; j < s.Length; j++)
        {
            sum += Math.Exp(Score(s[j], logits) * beta - max);
        }

        return max + Math.Log(sum) - Score(s[y], logits) * beta;
    }

    private static double Score(float v, bool logits) => logits ? v : Math.Log(Math.Max(v, 1e-30));

    private static void Check(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(labels);
        if (scores.Count != labels.Count)
        {
            throw new ArgumentException($"{scores.Count} score rows for {labels.Count} labels", nameof(labels));
        }

        for (var i = 0; i < scores.Count; i++)
        {
            if (labels[i] < 0 || labels[i] >= scores[i].Length)
            {
                throw new ArgumentException($"label {labels[i]} of sample {i} is outside 0..{scores[i].Length - 1}", nameof(labels));
            }
        }
    }
}
