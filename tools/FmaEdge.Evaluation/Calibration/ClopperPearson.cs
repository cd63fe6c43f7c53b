using MathNet.Numerics.Distributions;

namespace FmaEdge.Evaluation.Calibration;

/// <summary>The exact (Clopper-Pearson) one-sided upper confidence bound on a binomial proportion: with k errors in
/// n independent trials, the true error rate is at most <see cref="Upper"/> with probability at least 1 - delta.
/// Stateless and thread-safe.</summary>
/// <remarks>U is the p at which P(Bin(n, p) &lt;= k) = delta, i.e. the (1 - delta) quantile of Beta(k + 1, n - k);
/// U = 1 when k = n. For k = 0 it has the closed form 1 - delta^(1/n).</remarks>
public static class ClopperPearson
{
    /// <summary>Upper bound on the error rate from <paramref name="errors"/> of <paramref name="trials"/>, at
    /// confidence 1 - <paramref name="delta"/>; 1 for no trials.</summary>
    public static double Upper(int errors, int trials, double delta)
    {
        if (trials < 0 || errors < 0 || errors > trials)
        {
            throw new ArgumentOutOfRangeException(nameof(errors), $"need 0 <= errors <= trials, got {errors} of {trials}");
        }

        if (!(delta > 0 && delta < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must be in (0, 1)");
        }

        if (errors == trials)
        {
            return 1.0;
        }

        return errors == 0 ? 1 - Math.Pow(delta, 1.0 / trials) : Beta.InvCDF(errors + 1, trials - errors, 1 - delta);
    }

    /// <summary>The fewest error-free trials that certify an error rate of at most <paramref name="maxError"/> at
    /// confidence 1 - <paramref name="delta"/>: below it no outcome can pass, whatever the labels.</summary>
    public static int MinTrials(double maxError, double delta)
    {
        if (!(maxError > 0 && maxError < 1))
        {
            return maxError >= 1 ? 1 : int.MaxValue;
        }

        return (int)Math.Ceiling(Math.Log(delta) / Math.Log(1 - maxError) - 1e-9);
    }
}
