using CsCheck;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Evaluation.Metrics;
using static FmaEdge.Evaluation.Tests.Metrics.MetricsFixtures;

namespace FmaEdge.Evaluation.Tests.Calibration;

public sealed class CalibrationTests
{
    /// <summary>Logits whose labels are drawn from softmax(logits / trueT): the NLL-optimal temperature is trueT.</summary>
    private static (List<float[]> Logits, List<int> Labels) SampleFromTemperature(Random rng, int n, int classes, double trueT)
    {
        var logits = new List<float[]>();
        var labels = new List<int>();
        for (var i = 0; i < n; i++)
        {
            var z = Enumerable.Range(0, classes).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
            var p = HierarchicalDecoder.ToProbabilities(z, trueT, logits: true);
            var u = rng.NextDouble();
            var y = 0;
            for (double acc = p[0]; acc < u && y < classes - 1; acc += p[++y])
            {
            }

            logits.Add(z);
            labels.Add(y);
        }

        return (logits, labels);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(2.5)]
    public void Fit_LabelsDrawnAtKnownTemperature_RecoversIt(double trueT)
    {
        var (logits, labels) = SampleFromTemperature(new Random(7), 6000, 6, trueT);

        var fit = TemperatureScaling.Fit(logits, labels);

        Assert.InRange(fit.Temperature, trueT * 0.85, trueT * 1.15);
        Assert.True(fit.NllAfter < fit.NllBefore);
        Assert.Equal(TemperatureScaling.Nll(logits, labels, fit.Temperature), fit.NllAfter, 12);
    }

    [Fact]
    public void Fit_RandomScores_NoGridTemperatureBeatsTheFit()
    {
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[1, 60], Gen.Int[2, 8]).Sample(t =>
        {
            var (seed, n, classes) = t;
            var rng = new Random(seed);
            var logits = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, classes).Select(_ => (float)(rng.NextDouble() * 20 - 10)).ToArray()).ToList();
            var labels = Enumerable.Range(0, n).Select(_ => rng.Next(classes)).ToList();

            var fit = TemperatureScaling.Fit(logits, labels);

            Assert.InRange(fit.Temperature, TemperatureScaling.MinTemperature, TemperatureScaling.MaxTemperature);
            for (var logT = Math.Log(0.05); logT <= Math.Log(20); logT += 0.05)
            {
                Assert.True(fit.NllAfter <= TemperatureScaling.Nll(logits, labels, Math.Exp(logT)) + 1e-6);
            }
        }, iter: 40);
    }

    [Fact]
    public void Fit_ProbabilityOutputs_SameTemperatureAsTheirLogLogits()
    {
        var (logits, labels) = SampleFromTemperature(new Random(3), 800, 4, 1.7);
        var probs = logits.Select(z => HierarchicalDecoder.ToProbabilities(z, 1.0, logits: true)).ToList();

        var fromLogits = TemperatureScaling.Fit(logits, labels);
        var fromProbs = TemperatureScaling.Fit(probs, labels, outputsAreLogits: false);

        Assert.Equal(fromLogits.Temperature, fromProbs.Temperature, 2);
    }

    [Fact]
    public void Fit_ConstantScores_KeepsTemperatureOne()
    {
        var logits = Enumerable.Range(0, 10).Select(_ => new float[] { 1, 1, 1 }).ToList();

        var fit = TemperatureScaling.Fit(logits, Enumerable.Range(0, 10).Select(i => i % 3).ToList());

        Assert.Equal(1.0, fit.Temperature);
    }

    [Fact]
    public void FitThresholds_HandMadeLeafLevel_LowestThresholdMeetingTarget()
    {
        // One level. Confidences 0.95 R, 0.9 R, 0.8 W, 0.7 R, 0.6 R, 0.5 W. Target 0.75:
        // accepting down to 0.9 gives 2/2, 0.8 gives 2/3, 0.7 gives 3/4, 0.6 gives 4/5 = 0.8, 0.5 gives 4/6.
        double[] conf = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5];
        bool[] right = [true, true, false, true, true, false];

        var fit = ThresholdCalibrator.Fit(conf.Select(c => new[] { c }).ToList(), right.Select(r => new[] { r }).ToList(), 1, 0.75, confidence: 0);

        Assert.Equal([0.6], fit.Thresholds);
        Assert.Equal([5], fit.AcceptedByLevel);
        Assert.Equal(4.0 / 5, fit.Precision, 12);
        Assert.Equal(5.0 / 6, fit.Coverage, 12);
    }

    [Fact]
    public void FitThresholds_TwoLevels_UpperLevelFitOnImagesTheLeafRefused()
    {
        // [leaf conf, leaf right] / [parent conf, parent right]. Target 1.0.
        // Leaf: 0.9 R, 0.8 W, 0.7 R -> threshold 0.9 (only the first).
        // Remaining parents: 0.95 R (image 2), 0.85 W (image 3) -> threshold 0.95.
        var conf = new List<double[]> { new[] { 0.99, 0.9 }, new[] { 0.95, 0.8 }, new[] { 0.85, 0.7 } };
        var right = new List<bool[]> { new[] { true, true }, new[] { true, false }, new[] { false, true } };

        var fit = ThresholdCalibrator.Fit(conf, right, 2, 1.0, confidence: 0);

        Assert.Equal([0.95, 0.9], fit.Thresholds);
        Assert.Equal([1, 1], fit.AcceptedByLevel);
        Assert.Equal(1.0, fit.Precision);
    }

    [Fact]
    public void FitThresholds_LevelThatNeverReachesTarget_NeverAnswersAndNoAnswers()
    {
        var conf = new List<double[]> { new[] { 0.7 }, new[] { 0.6 } };
        var right = new List<bool[]> { new[] { false }, new[] { true } };

        var fit = ThresholdCalibrator.Fit(conf, right, 1, 0.99, confidence: 0);

        Assert.Equal([DecodingSpec.NeverAnswer], fit.Thresholds);
        Assert.Equal(0.0, fit.Coverage);
        Assert.True(fit.ReachedTarget[0]);
    }

    [Fact]
    public void FitThresholds_WrongAnswersTiedAtOne_LevelNeverAnswersNotEvenTheTies()
    {
        // Confidences of exactly 1.0 (float32 rounding of a very sharp softmax) would pass a threshold of 1.
        var conf = new List<double[]> { new[] { 1.0 }, new[] { 1.0 }, new[] { 0.9 } };
        var right = new List<bool[]> { new[] { true }, new[] { false }, new[] { true } };

        var fit = ThresholdCalibrator.Fit(conf, right, 1, 0.99, confidence: 0);

        Assert.Equal([DecodingSpec.NeverAnswer], fit.Thresholds);
        Assert.Equal([0], fit.AcceptedByLevel);
        Assert.True(fit.ReachedTarget[0]);
        Assert.Equal(0, HierarchicalDecoder.CoarseDepth([1.0], fit.Thresholds));
        Assert.Equal(1, HierarchicalDecoder.CoarseDepth([1.0], [1.0]));
    }

    [Fact]
    public void FitThresholds_BadTarget_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ThresholdCalibrator.Fit([], [], 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ThresholdCalibrator.Fit([], [], 1, 1.5));
    }

    [Fact]
    public void FitThresholds_RandomConfidences_ClimbingRuleMeetsTargetAtEveryLevel()
    {
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[1, 200], Gen.Int[1, 4], Gen.Double[0.5, 1.0]).Sample(t =>
        {
            var (seed, n, depth, target) = t;
            var rng = new Random(seed);

            // Coarse-to-fine confidences that never rise toward the leaf (as node marginals do), coarsened to a
            // few values so ties happen; wrong answers are likelier at low confidence.
            var conf = new List<double[]>();
            var right = new List<bool[]>();
            for (var i = 0; i < n; i++)
            {
                var c = new double[depth];
                var r = new bool[depth];
                var prev = 1.0;
                for (var l = 0; l < depth; l++)
                {
                    prev = Math.Round(prev * (0.6 + 0.4 * rng.NextDouble()), 2);
                    c[l] = prev;
                    r[l] = rng.NextDouble() < 0.3 + 0.7 * prev;
                }

                conf.Add(c);
                right.Add(r);
            }

            var fit = ThresholdCalibrator.Fit(conf, right, depth, target, confidence: 0);

            // Apply the decoder's own climbing rule and count answers per level.
            var answered = new int[depth];
            var good = new int[depth];
            for (var i = 0; i < n; i++)
            {
                var d = HierarchicalDecoder.CoarseDepth(conf[i], fit.Thresholds);
                if (d > 0)
                {
                    answered[d - 1]++;
                    good[d - 1] += right[i][d - 1] ? 1 : 0;
                }
            }

            Assert.Equal(fit.AcceptedByLevel, answered);
            Assert.All(fit.Thresholds, th => Assert.True(th is >= 0 and <= 1 or DecodingSpec.NeverAnswer, $"threshold {th}"));
            for (var l = 0; l < depth; l++)
            {
                Assert.True(fit.ReachedTarget[l]);
                Assert.True(answered[l] == 0 || (double)good[l] / answered[l] >= target);
            }

            if (answered.Sum() > 0)
            {
                Assert.True((double)good.Sum() / answered.Sum() >= target);
            }

            // Maximal at the finest level: one candidate lower would break the target there.
            var leafConf = conf.Select(c => c[depth - 1]).Where(c => c < fit.Thresholds[depth - 1]).DefaultIfEmpty(-1).Max();
            if (leafConf >= 0)
            {
                var set = Enumerable.Range(0, n).Where(i => conf[i][depth - 1] >= leafConf).ToList();
                Assert.True((double)set.Count(i => right[i][depth - 1]) / set.Count < target);
            }
        }, iter: 300);
    }

    [Fact]
    public void Calibrate_RandomLogitsThroughDecoder_CalibratedAnswersReachTarget()
    {
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[20, 150]).Sample(t =>
        {
            var (seed, n) = t;
            var rng = new Random(seed);
            var tree = RandomTree(rng);

            // Over-confident logits that mostly point at the truth.
            var leaves = Enumerable.Range(0, n).Select(_ => rng.Next(tree.Leaves.Count)).ToList();
            var outputs = leaves.Select(leaf => tree.Levels.Select(level =>
            {
                var truth = tree.AncestorOfLeaf(leaf, level.Depth);
                var favoured = rng.NextDouble() < 0.75 ? truth : rng.Next(level.Count);
                return Enumerable.Range(0, level.Count).Select(i => (float)((i == favoured ? 6 : 0) + rng.NextDouble() * 6)).ToArray();
            }).ToArray()).ToList();

            var result = DecodingCalibrator.Calibrate(tree, new DecodingSpec(), true, outputs, leaves, 0.9, confidence: 0);

            Assert.Equal(tree.Depth, result.Decoding.Temperatures.Count);
            Assert.Equal(0.9, result.Decoding.TargetPrecision);
            Assert.All(result.Decoding.Temperatures, x => Assert.InRange(x, 0.05, 20));
            for (var l = 0; l < tree.Depth; l++)
            {
                Assert.True(result.Temperatures[l].NllAfter <= result.Temperatures[l].NllBefore);
            }

            // Re-decode independently with the calibrated spec and score the coarse answers.
            var decoder = new HierarchicalDecoder(tree, result.Decoding);
            var records = outputs.Select((o, i) => new EvaluationRecord(leaves[i], decoder.Decode(o))).ToList();
            var answers = records.Where(r => r.Prediction.Coarse.Depth > 0).ToList();
            var right = answers.Count(r =>
            {
                var node = r.Prediction.Coarse.Deepest!;
                return tree.AncestorOfLeaf(r.TrueLeaf, node.Level) == node.Index;
            });
            if (result.Thresholds.ReachedTarget.All(x => x) && answers.Count > 0)
            {
                Assert.True((double)right / answers.Count >= 0.9);
            }

            Assert.Equal(HierarchicalMetrics.Compute(tree, records).Coarse.Precision, result.After.Coarse.Precision, 12);
        }, iter: 60);
    }
}
