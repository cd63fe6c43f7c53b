using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>ResNet-50+CBAM trains at the batch sizes a grid uses: every gradient finite after a step on real images.
/// Regressions: libtorch 2.10's channels-last max_pool2d backward gave NaN gradients at batch >= 24 (64 px), and its
/// oneDNN kernels gave NaN gradients at random steps (3 of these 12 cases failed per run), so every ResNet row of
/// `fma-train compare` stopped with "the loss became NaN". Four batch sizes, as the failures depend on shape.</summary>
public class ResNetTrainingTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(32)]
    [InlineData(40)]
    public void TwoSteps_RealImages_GradientsAndLossStayFinite(int batchSize)
    {

        using var data = StepBatch.Load(2);
        var images = data.Images[..batchSize];
        var targets = data.Targets.Select(t => t[..batchSize]).ToArray();
        manual_seed(0);
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "resnet50_cbam", Head = "independent", ImageSize = StepBatch.Size }, TestData.Tree);
        using var optimizer = Trainer.CreateOptimizer(model, new TrainingOptions { Model = model.Config, LearningRate = 1e-3, WeightDecay = 0.05 });
        using var loss = new HierarchicalLoss(new LossOptions(), TestData.Tree);
        model.train();
        for (var step = 0; step < 2; step++)
        {
            using var scope = NewDisposeScope();
            var value = loss.Compute(model.forward(images), targets);
            Assert.True(float.IsFinite(value.Total.item<float>()), $"loss at step {step} is {value.Total.item<float>()}");
            optimizer.zero_grad();
            value.Total.backward();
            var bad = model.named_parameters().Where(p => p.parameter.grad is not null && !p.parameter.grad.isfinite().all().item<bool>()).Select(p => p.name).ToList();
            Assert.True(bad.Count == 0, $"non-finite gradients at step {step}: {string.Join(", ", bad.Take(5))}");
            SafeStep.Step(optimizer); // as the trainer steps: AdamW's temporary Scalars must not be collected mid-call
        }
    }
}
