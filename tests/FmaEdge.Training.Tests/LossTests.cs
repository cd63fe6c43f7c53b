using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class LossTests
{
    [Theory]
    [InlineData("flat", "ce")]
    [InlineData("flat", "dhc")]
    [InlineData("flat", "dhc-soft")]
    [InlineData("independent", "ce")]
    [InlineData("independent", "dhc")]
    [InlineData("independent", "dhc-soft")]
    [InlineData("shared", "ce")]
    [InlineData("shared", "dhc")]
    [InlineData("shared", "dhc-soft")]
    public void TrainStep_EveryHeadAndLoss_GivesFiniteLossAndMovesWeights(string head, string loss)
    {
        using var batch = StepBatch.Load(perLeaf: 1);
        var (model, value) = StepBatch.OneStep(head, new LossOptions { Kind = LossOptions.ParseKind(loss), LabelSmoothing = 0.1 }, batch, seed: 1, bcnn: loss == "ce");
        using (model)
        {
            Assert.True(float.IsFinite(value.Total), $"total loss {value.Total}");
            Assert.All(value.PerLevel, l => Assert.True(float.IsFinite(l) && l > 0));
            using var init = StepBatch.Fresh(head, seed: 1);
            var moved = model.named_parameters().Zip(init.named_parameters()).Any(p => !TestData.Same(p.First.parameter, p.Second.parameter));
            Assert.True(moved, "one optimiser step left every weight unchanged");
        }
    }

    [Fact]
    public void DhcDloss_Beta0Versus08_GivesIdenticalWeightsBecauseItHasNoGradient()
    {
        using var batch = StepBatch.Load(perLeaf: 1);
        var (m0, v0) = StepBatch.OneStep("independent", new LossOptions { Kind = LossKind.Dhc, Beta = 0 }, batch, seed: 3);
        var (m8, v8) = StepBatch.OneStep("independent", new LossOptions { Kind = LossKind.Dhc, Beta = 0.8 }, batch, seed: 3);
        using (m0)
        using (m8)
        {
            // The claim is only meaningful when dloss is not zero on this batch.
            Assert.True(v8.Dependence > 0, $"dloss is {v8.Dependence}; the batch must contain inconsistent, wrong predictions");
            Assert.NotEqual(v0.Total, v8.Total);
            foreach (var (a, b) in m0.named_parameters().Zip(m8.named_parameters()))
            {
                Assert.True(TestData.Same(a.parameter, b.parameter), $"{a.name} differs: dloss changed the update");
            }
        }
    }

    [Fact]
    public void DhcDloss_FromArgmaxIndicators_DoesNotRequireGrad()
    {
        var tree = TestData.Tree;
        using var loss = new HierarchicalLoss(new LossOptions { Kind = LossKind.Dhc }, tree);
        using var scope = NewDisposeScope();
        var logits = tree.LevelSizes.Select(n => randn(4, n).requires_grad_()).ToArray();
        var targets = tree.LevelSizes.Select(n => zeros(4, dtype: ScalarType.Int64)).ToArray();
        var d = loss.DhcDloss(logits, targets);
        Assert.False(d.requires_grad);
        var soft = loss.SoftDependence(logits);
        Assert.True(soft.requires_grad);
        soft.backward();
        Assert.True(logits[1].grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void DhcSoft_Beta0Versus08_GivesDifferentWeights()
    {
        using var batch = StepBatch.Load(perLeaf: 1);
        var (m0, _) = StepBatch.OneStep("independent", new LossOptions { Kind = LossKind.DhcSoft, Beta = 0 }, batch, seed: 3);
        var (m8, _) = StepBatch.OneStep("independent", new LossOptions { Kind = LossKind.DhcSoft, Beta = 0.8 }, batch, seed: 3);
        using (m0)
        using (m8)
        {
            Assert.Contains(m0.named_parameters().Zip(m8.named_parameters()), p => !TestData.Same(p.First.parameter, p.Second.parameter));
        }
    }

    [Fact]
    public void SoftDependence_ConsistentVersusInconsistentConfidentPredictions_IsZeroVersusOne()
    {
        var tree = TestData.Tree;
        using var loss = new HierarchicalLoss(new LossOptions { Kind = LossKind.DhcSoft }, tree);
        using var scope = NewDisposeScope();
        var path = tree.PathOfLeaf(0).ToArray();
        var other = tree.PathOfLeaf(tree.Leaves.Count - 1).ToArray();
        Assert.NotEqual(path[0], other[0]);
        Tensor OneHot(int n, int i) => nn.functional.one_hot(tensor(new long[] { i }), n).to(ScalarType.Float32).mul(50);
        var consistent = tree.LevelSizes.Select((n, l) => OneHot(n, path[l])).ToArray();
        var inconsistent = tree.LevelSizes.Select((n, l) => OneHot(n, l == 0 ? other[0] : path[l])).ToArray();
        Assert.InRange(loss.SoftDependence(consistent).item<float>(), 0f, 1e-4f);
        // Level 1 disagrees with level 0 (1.0); level 2 agrees with level 1 (0.0).
        Assert.InRange(loss.SoftDependence(inconsistent).item<float>(), 0.999f, 1.0001f);
    }

    [Fact]
    public void BCnnSchedule_ThreeLevels_ShiftsWeightFromCoarseToFine()
    {
        var s = LevelWeightSchedule.BCnn(3);
        Assert.Equal([0.98, 0.01, 0.01], s.For(0, 20));
        Assert.Equal([0.1, 0.8, 0.1], s.For(5, 20));
        Assert.Equal([0.1, 0.2, 0.7], s.For(9, 20));
        Assert.Equal([0.0, 0.0, 1.0], s.For(19, 20));
        Assert.Equal([1.0, 1.0, 1.0], LevelWeightSchedule.Constant(3).For(7, 20));
    }

    [Fact]
    public void LearningRate_WarmupThenCosine_RisesPeaksAndDecaysToFloor()
    {
        var s = new LearningRateSchedule(1e-3, 1e-6, 10, 110);
        Assert.Equal(1e-4, s.At(0), 12);
        Assert.Equal(1e-3, s.At(9), 12);
        Assert.Equal(1e-3, s.At(10), 12);
        Assert.True(s.At(60) < s.At(30) && s.At(30) < s.At(10));
        Assert.Equal(1e-6, s.At(110), 12);
    }

    [Fact]
    public void LearningRate_CosinePerEpoch_HoldsEachEpochsValueLikeTorchCosineAnnealing()
    {
        // 4 epochs of 10 steps, no warm-up: torch's CosineAnnealingLR(T_max=4) stepped per epoch gives
        // base * (1 + cos(pi * e / 4)) / 2 for epoch e (floor 0 there, 1e-6 here).
        var s = new LearningRateSchedule(1e-3, 0, 0, 40, StepsPerEpoch: 10);
        for (var e = 0; e < 4; e++)
        {
            var expected = 1e-3 * (1 + Math.Cos(Math.PI * e / 4)) / 2;
            Assert.Equal(expected, s.At(e * 10), 12);
            Assert.Equal(expected, s.At((e * 10) + 9), 12);
        }
    }
}
