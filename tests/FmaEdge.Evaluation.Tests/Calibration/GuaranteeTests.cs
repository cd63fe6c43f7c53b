using CsCheck;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Evaluation.Calibration;

namespace FmaEdge.Evaluation.Tests.Calibration;

/// <summary>The mathematics of the guaranteed thresholds: the exact binomial bound against known values and its
/// definition, and that certified thresholds are never looser than the point estimate on the same images.</summary>
public sealed class GuaranteeTests
{
    /// <summary>P(Bin(n, p) &lt;= k) summed term by term in log space (independent of the library under test).</summary>
    private static double BinomialCdf(int k, int n, double p)
    {
        double total = 0;
        for (var i = 0; i <= k; i++)
        {
            var logChoose = LogFactorial(n) - LogFactorial(i) - LogFactorial(n - i);
            total += Math.Exp(logChoose + i * Math.Log(p) + (n - i) * Math.Log(1 - p));
        }

        return total;
    }

    private static double LogFactorial(int n) => Enumerable.Range(1, n).Sum(i => Math.Log(i));

    [Theory]
    // Published exact 95 % two-sided intervals (upper ends, i.e. one-sided 97.5 %): 1/10 -> 0.4450, 5/20 -> 0.4910,
    // 0/10 -> 0.3085; and the closed form 1 - delta^(1/n) for no errors.
    [InlineData(1, 10, 0.025, 0.4450)]
    [InlineData(5, 20, 0.025, 0.4910)]
    [InlineData(0, 10, 0.025, 0.3085)]
    [InlineData(0, 299, 0.05, 0.0099694)]
    public void Upper_KnownBinomialValues_Match(int errors, int trials, double delta, double expected)
    {
        Assert.Equal(expected, ClopperPearson.Upper(errors, trials, delta), 4);
    }

    [Fact]
    public void Upper_AnyOutcome_IsThePWhereTheBinomialTailEqualsDelta()
    {
        var rng = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            var n = rng.Next(1, 2000);
            var k = rng.Next(0, Math.Min(n, 80));
            var delta = 0.001 + rng.NextDouble() * 0.3;

            var u = ClopperPearson.Upper(k, n, delta);

            Assert.InRange(u, (double)k / n, 1.0);
            Assert.Equal(delta, BinomialCdf(k, n, u), 6);
        }
    }

    [Fact]
    public void Certified_AgreesWithTheBound()
    {
        var rng = new Random(11);
        for (var i = 0; i < 500; i++)
        {
            var n = rng.Next(1, 3000);
            var k = rng.Next(0, Math.Min(n, 60) + 1);
            var delta = 0.001 + rng.NextDouble() * 0.2;
            var maxError = 0.001 + rng.NextDouble() * 0.05;
            var u = ClopperPearson.Upper(k, n, delta);
            if (Math.Abs(u - maxError) > 1e-9)
            {
                Assert.Equal(u <= maxError, ThresholdCalibrator.Certified(k, n, maxError, delta));
            }
        }
    }

    [Fact]
    public void MinTrials_IsTheFewestErrorFreeAnswersThatCertify()
    {
        var n = ClopperPearson.MinTrials(0.01, 0.05);

        Assert.Equal(299, n);
        Assert.True(ThresholdCalibrator.Certified(0, n, 0.01, 0.05));
        Assert.False(ThresholdCalibrator.Certified(0, n - 1, 0.01, 0.05));
    }

    [Fact]
    public void Fit_RandomScores_CertifiedThresholdsNeverLooserThanThePointEstimateOnTheSameImages()
    {
        Gen.Select(Gen.Int[1, 3], Gen.Int[50, 1500], Gen.Int[0, int.MaxValue], Gen.Double[0.8, 0.99]).Sample((depth, n, seed, target) =>
        {
            var (conf, right) = Synthetic(depth, n, seed);

            var certified = ThresholdCalibrator.Fit(conf, right, depth, target, confidence: 0.9);

            // Level by level on the images the certified fit left for that level, the point estimate is as low or lower,
            // and the certified level's answers reach the target on the calibration images too.
            var remaining = Enumerable.Range(0, n).ToList();
            for (var l = depth - 1; l >= 0; l--)
            {
                var level = l;
                var point = ThresholdCalibrator.Fit(remaining.Select(i => new[] { conf[i][level] }).ToList(),
                    remaining.Select(i => new[] { right[i][level] }).ToList(), 1, target, confidence: 0);
                Assert.True(certified.Thresholds[l] >= point.Thresholds[0], $"level {l}: certified {certified.Thresholds[l]} < point {point.Thresholds[0]}");
                if (certified.Thresholds[l] <= 1.0)
                {
                    // A certified level (the others never answer): its answers reach the target on these images too.
                    Assert.True(certified.ReachedTarget[l], $"level {l} below target on the calibration images");
                    Assert.True(certified.PrecisionLowerBoundByLevel[l] >= target - 1e-9, $"level {l}: lower bound {certified.PrecisionLowerBoundByLevel[l]} < {target}");
                }
                remaining = remaining.Where(i => conf[i][level] < certified.Thresholds[level]).ToList();
            }
        }, iter: 60);
    }

    [Fact]
    public void Fit_TooFewImagesToCertify_AnswersNothing()
    {
        // 200 perfect answers cannot certify 99 % at confidence 0.9 (299 are needed even with no error).
        var conf = Enumerable.Range(0, 200).Select(i => new[] { 0.5 + (i / 400.0) }).ToList();
        var right = conf.Select(_ => new[] { true }).ToList();

        var fit = ThresholdCalibrator.Fit(conf, right, 1, 0.99, confidence: 0.9);
        var point = ThresholdCalibrator.Fit(conf, right, 1, 0.99, confidence: 0);

        Assert.Equal(DecodingSpec.NeverAnswer, fit.Thresholds[0]);
        Assert.Equal(0, fit.AcceptedByLevel[0]);
        Assert.Equal(200, point.AcceptedByLevel[0]);
    }

    [Fact]
    public void Fit_TooFewImagesAllAtConfidenceOne_NeverAnswersThoseEither()
    {
        // The shipped model's level 1 before this rule: 224 calibration images left for it, all right, all with
        // confidence 1.0 (temperature 0.05). Even alone (one level, 1 - 0.1) 99 % needs 230 error-free answers; the old
        // threshold 1 let those ties pass uncertified.
        var conf = Enumerable.Range(0, 224).Select(_ => new[] { 1.0 }).ToList();
        var right = conf.Select(_ => new[] { true }).ToList();

        var fit = ThresholdCalibrator.Fit(conf, right, 1, 0.99, confidence: 0.9);

        Assert.Equal(DecodingSpec.NeverAnswer, fit.Thresholds[0]);
        Assert.Equal(0, fit.AcceptedByLevel[0]);
        Assert.All(conf, c => Assert.Equal(0, HierarchicalDecoder.CoarseDepth(c, fit.Thresholds)));
    }

    /// <summary>Confidences in 0..1 per image and level, right with probability close to the confidence.</summary>
    private static (List<double[]> Conf, List<bool[]> Right) Synthetic(int depth, int n, int seed)
    {
        var rng = new Random(seed);
        var conf = new List<double[]>();
        var right = new List<bool[]>();
        for (var i = 0; i < n; i++)
        {
            var c = Enumerable.Range(0, depth).Select(_ => Math.Round(1 - Math.Pow(rng.NextDouble(), 3) * 0.5, 3)).ToArray();
            conf.Add(c);
            right.Add(c.Select(x => rng.NextDouble() < Math.Min(1, x + 0.01)).ToArray());
        }

        return (conf, right);
    }
}
