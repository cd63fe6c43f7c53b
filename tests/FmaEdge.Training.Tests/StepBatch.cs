using FmaEdge.Core.Contract;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;
using FmaEdge.Vision;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>A fixed batch of real images (one per leaf) at 64 px and helpers for single optimiser steps.</summary>
internal sealed class StepBatch : IDisposable
{
    public const int Size = 64;

    private StepBatch(Tensor images, Tensor[] targets)
    {
        Images = images;
        Targets = targets;
    }

    public Tensor Images { get; }
    public Tensor[] Targets { get; }

    public static StepBatch Load(int perLeaf)
    {
        var data = TestData.Subset("val", perLeaf);
        var tree = data.Tree;
        var pre = new ImagePreprocessor(new PreprocessSpec(), Size, Size);
        var floats = data.Images.SelectMany(i => pre.PreprocessFile(i.Path)).ToArray();
        var n = data.Images.Count;
        var targets = Enumerable.Range(0, tree.Depth)
            .Select(l => tensor(data.Images.Select(i => (long)tree.AncestorOfLeaf(i.Leaf, l)).ToArray())).ToArray();
        return new StepBatch(tensor(floats, [n, 3, Size, Size]), targets);
    }

    public static HierarchicalClassifier Fresh(string head, int seed)
    {
        manual_seed(seed);
        return new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = head, ImageSize = Size, HeadHidden = 32 }, TestData.Tree);
    }

    /// <summary>One AdamW step (the trainer's optimiser set-up) from a seeded initialisation.</summary>
    public static (HierarchicalClassifier Model, (float Total, float[] PerLevel, float Dependence) Value) OneStep(
        string head, LossOptions lossOptions, StepBatch batch, int seed, bool bcnn = false)
    {
        var model = Fresh(head, seed);
        var options = new TrainingOptions { Model = model.Config, LearningRate = 1e-3, WeightDecay = 0.05 };
        using var optimizer = Trainer.CreateOptimizer(model, options);
        using var loss = new HierarchicalLoss(lossOptions, TestData.Tree);
        using var scope = NewDisposeScope();
        model.train();
        manual_seed(seed);
        var logits = model.forward(batch.Images);
        var weights = bcnn ? LevelWeightSchedule.BCnn(TestData.Tree.Depth).For(0, 10) : null;
        var value = loss.Compute(logits, batch.Targets, weights);
        optimizer.zero_grad();
        value.Total.backward();
        nn.utils.clip_grad_norm_(model.parameters(), 5.0);
        SafeStep.Step(optimizer); // as the trainer steps: AdamW's temporary Scalars must not be collected mid-call
        return (model, (value.Total.item<float>(), value.PerLevel, value.Dependence));
    }

    public void Dispose()
    {
        Images.Dispose();
        foreach (var t in Targets)
        {
            t.Dispose();
        }
    }
}
