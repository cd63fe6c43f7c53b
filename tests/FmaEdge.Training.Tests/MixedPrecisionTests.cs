using FmaEdge.TestSupport;
using FmaEdge.Training.Data;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class MixedPrecisionTests(ITestOutputHelper output)
{
    [Fact]
    public void PushGradients_BFloat16Copy_GivesFloat32GradientsCloseToTheFloat32Pass()
    {
        using var batch = StepBatch.Load(1);
        using var model = StepBatch.Fresh("independent", 3);
        using var loss = new HierarchicalLoss(new LossOptions(), TestData.Tree);
        model.train();

        var reference = Gradients(model, () => model.forward(batch.Images), loss, batch);
        using var mixed = new MixedPrecision(model, TestData.Tree, CPU);
        mixed.PullWeights();
        var bf16 = Gradients(model, () => mixed.Forward(batch.Images), loss, batch, mixed.PushGradients);

        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
        using var a = cat(reference.Select(g => g.flatten()).ToArray());
        using var b = cat(bf16.Select(g => g.flatten()).ToArray());
        var cosine = a.dot(b).item<float>() / (a.norm().item<float>() * b.norm().item<float>());
        var relative = a.sub(b).norm().item<float>() / a.norm().item<float>();
        output.WriteLine($"bf16 vs float32 gradients: cosine {cosine:F6}, relative error {relative:P2}");
        // bfloat16 keeps 8 mantissa bits (~0.4 % per value); measured here: cosine 0.99998, relative error 0.54 %.
        Assert.True(cosine > 0.999, $"bf16 gradients point elsewhere: cosine {cosine}");
        Assert.True(relative is > 0f and < 0.05f, $"bf16 gradients differ by {relative:P2} (0 would mean the float32 pass ran)");
    }

    [Fact]
    public void Run_BFloat16_UpdatesTheFloat32WeightsAndExportsAFloat32Model()
    {
        using var dir = new TempFolder("bf16");
        var train = TrainerTests.SubsetFolder(dir, "train", 2);
        var options = new TrainingOptions
        {
            Data = new DatasetSource { DataDir = train },
            RunDir = Path.Combine(dir.Path, "run"),
            Model = new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 },
            Epochs = 1,
            BatchSize = 16,
            MaxBatchesPerEpoch = 2,
            Seed = 5,
            Threads = 2,
            Precision = MixedPrecision.BFloat16,
        };
        var result = new Trainer(options, new PlainReporter(TextWriter.Null)).Run(resume: false, CancellationToken.None);
        var export = Trainer.Export(result.FinalCheckpoint, Path.Combine(dir.Path, "model.onnx"));
        Assert.InRange(export.MaxAbsDifference, 0, 1e-4);

        // The trainer's initial weights for this seed, against what two bf16 steps made of them.
        manual_seed(DeterministicRandom.Seed(options.Seed, -1));
        using var initial = new HierarchicalClassifier(options.Model, TestData.Tree);
        var (trained, _, state) = Checkpoint.LoadModel(result.FinalCheckpoint);
        using (trained)
        {
            Assert.Equal(MixedPrecision.BFloat16, state.Options.Precision);
            Assert.All(trained.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            var moved = trained.parameters().Zip(initial.parameters()).Count(p => !TestData.Same(p.First, p.Second));
            Assert.True(moved > trained.parameters().Count() / 2, $"only {moved} parameter tensors changed in two bf16 steps");
        }
    }

    private static List<Tensor> Gradients(HierarchicalClassifier model, Func<Tensor[]> forward, HierarchicalLoss loss, StepBatch batch, Action? afterBackward = null)
    {
        model.zero_grad();
        var logits = forward();
        loss.Compute(logits, batch.Targets, null).Total.backward();
        afterBackward?.Invoke();

        return model.parameters().Select(p => p.grad!.detach().clone()).ToList();
    }
}
