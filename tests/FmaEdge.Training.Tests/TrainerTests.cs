using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.TestSupport;
using FmaEdge.Training.Data;
using FmaEdge.Training.Models;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Training;
using FmaEdge.Vision;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class TrainerTests
{
    /// <summary>A real subset as a folder tree (symbolic links to the dataset's files).</summary>
    internal static string SubsetFolder(TempFolder dir, string split, int perLeaf)
    {
        var root = Path.Combine(dir.Path, split);
        foreach (var img in TestData.Subset(split, perLeaf).Images)
        {
            var leaf = TestData.Tree.Leaves[img.Leaf].Path;
            var target = dir.File(Path.Combine(split, leaf, Path.GetFileName(img.Path)));
            File.CreateSymbolicLink(target, img.Path);
        }

        return root;
    }

    private static TrainingOptions Small(string train, string? val, string runDir, int epochs) => new()
    {
        Data = new DatasetSource { DataDir = train, ValDir = val },
        RunDir = runDir,
        Model = new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 },
        Epochs = epochs,
        BatchSize = 16,
        LearningRate = 2e-3,
        WarmupEpochs = 0,
        Seed = 11,
        Threads = 2,
        LoaderThreads = 1,
    };

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.9)]
    public void Run_ResumeAfterOneEpoch_GivesSameWeightsAsUninterruptedRun(double ema)
    {
        using var dir = new TempFolder("resume");
        var train = SubsetFolder(dir, "train", 2);
        var reporter = new PlainReporter(TextWriter.Null);

        var straight = Small(train, null, Path.Combine(dir.Path, "straight"), 2) with { MaxBatchesPerEpoch = 2, Ema = ema };
        new Trainer(straight, reporter).Run(resume: false, CancellationToken.None);

        // Ctrl-C during epoch 2 of the same recipe, then --resume.
        var interrupted = straight with { RunDir = Path.Combine(dir.Path, "resumed") };
        using (var cts = new CancellationTokenSource())
        {
            Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(interrupted, new CancelInEpoch(cts, 2)).Run(resume: false, cts.Token));
        }

        Assert.Equal(1, Checkpoint.ReadState(Trainer.LastDir(interrupted.RunDir)).CompletedEpochs);
        var resumed = new Trainer(interrupted, reporter).Run(resume: true, CancellationToken.None);

        Assert.Equal(2, resumed.History.Epochs.Count);
        var (a, _, sa) = Checkpoint.LoadModel(Trainer.LastDir(straight.RunDir));
        var (b, _, sb) = Checkpoint.LoadModel(Trainer.LastDir(interrupted.RunDir));
        using (a)
        using (b)
        {
            Assert.Equal(sa.GlobalStep, sb.GlobalStep);
            foreach (var (pa, pb) in a.named_parameters().Zip(b.named_parameters()))
            {
                Assert.True(TestData.Same(pa.parameter, pb.parameter), $"{pa.name} differs after resume");
            }
        }

        // With a weight average, weights.dat holds the average and the trained weights are beside it; both resume exactly.
        var liveFile = Path.Combine(Trainer.LastDir(straight.RunDir), Checkpoint.LiveWeightsFile);
        Assert.Equal(ema > 0, File.Exists(liveFile));
        if (ema > 0)
        {
            var (average, _, _) = Checkpoint.LoadModel(Trainer.LastDir(straight.RunDir));
            var (live, _, _) = Checkpoint.LoadModel(Trainer.LastDir(straight.RunDir));
            var (resumedLive, _, _) = Checkpoint.LoadModel(Trainer.LastDir(interrupted.RunDir));
            using (average)
            using (live)
            using (resumedLive)
            {
                live.load(liveFile);
                resumedLive.load(Path.Combine(Trainer.LastDir(interrupted.RunDir), Checkpoint.LiveWeightsFile));
                Assert.All(live.named_parameters().Zip(resumedLive.named_parameters()), p => Assert.True(TestData.Same(p.First.parameter, p.Second.parameter), $"live {p.First.name} differs after resume"));
                Assert.Contains(average.named_parameters().Zip(live.named_parameters()), p => !TestData.Same(p.First.parameter, p.Second.parameter));
            }
        }

        // And the check can fail: a different seed gives different weights.
        var other = straight with { RunDir = Path.Combine(dir.Path, "other"), Seed = 12 };
        new Trainer(other, reporter).Run(resume: false, CancellationToken.None);
        var (c, _, _) = Checkpoint.LoadModel(Trainer.LastDir(other.RunDir));
        var (d, _, _) = Checkpoint.LoadModel(Trainer.LastDir(interrupted.RunDir));
        using (c)
        using (d)
        {
            Assert.Contains(c.named_parameters().Zip(d.named_parameters()), p => !TestData.Same(p.First.parameter, p.Second.parameter));
        }
    }

    [Fact]
    public void WeightAverage_Update_MovesTheAverageByOneMinusDecayTowardsTheLiveWeights()
    {
        var config = new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 32 };
        using var live = new HierarchicalClassifier(config, TestData.Tree);
        using var average = new HierarchicalClassifier(config, TestData.Tree);
        var ema = new WeightAverage(live, average, 0.9);
        ema.CopyFromLive();
        Assert.All(live.parameters().Zip(average.parameters()), p => Assert.True(TestData.Same(p.First, p.Second)));
        var before = average.parameters().Select(p => p.detach().clone()).ToList();
        using (no_grad())
        {
            foreach (var p in live.parameters())
            {
                p.add_(1.0f);
            }
        }

        // Late in a run the decay is the configured one; at step 0 the warm-up keeps only 1/10 of the average.
        Assert.Equal(0.9, ema.DecayAt(1000));
        Assert.Equal(0.1, ema.DecayAt(0), 12);
        ema.Update(1000);
        foreach (var (after, old) in average.parameters().Zip(before))
        {
            Assert.True(after.sub(old).sub(0.1f).abs().max().item<float>() < 1e-5f, "average did not move by (1 - 0.9) x 1");
        }

        // 0.1 x (w + 0.1) + 0.9 x (w + 1) = w + 0.91
        ema.Update(0);
        foreach (var (after, old) in average.parameters().Zip(before))
        {
            Assert.True(after.sub(old).sub(0.91f).abs().max().item<float>() < 1e-5f, "average at step 0 is not 0.1 x average + 0.9 x live");
        }

        using var other = new HierarchicalClassifier(config with { ImageSize = 32, Head = "flat" }, TestData.Tree);
        Assert.Throws<ArgumentException>(() => new WeightAverage(live, other, 0.9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightAverage(live, average, 1.0));
    }

    [Fact]
    public void TrainAndExport_TinyRealSubset_ValidModelBeatsChanceAtFirstLevel()
    {
        using var dir = new TempFolder("e2e");
        var train = SubsetFolder(dir, "train", 16);
        var val = SubsetFolder(dir, "val", 4);
        var options = Small(train, val, Path.Combine(dir.Path, "run"), 2) with { BatchSize = 8 };

        var result = new Trainer(options, new PlainReporter(TextWriter.Null)).Run(resume: false, CancellationToken.None);
        var modelPath = Path.Combine(result.RunDir, "model.onnx");
        var export = Trainer.Export(result.FinalCheckpoint, modelPath);

        var history = TrainingHistory.Load(Path.Combine(result.RunDir, Trainer.HistoryFile));
        Assert.Equal(2, history.Epochs.Count);
        Assert.All(history.Epochs, e => Assert.True(e.ImagesPerSec > 0 && e.ValTop1!.Length == 3));
        var report = ModelContract.Validate(modelPath);
        Assert.True(report.IsValid, string.Join("; ", report.Violations));
        Assert.InRange(export.MaxAbsDifference, 0, 1e-4);

        // Accuracy through the daemon's path: ONNX Runtime + the shared preprocessing.
        using var classifier = OnnxClassifier.Load(modelPath, new InferenceOptions { Providers = ["cpu"] });
        var valSet = DatasetLoader.ScanFolder(val, report.Model!.Tree);
        var correct = 0;
        foreach (var img in valSet.Images)
        {
            var outputs = classifier.Run(classifier.Preprocessor.PreprocessFile(img.Path), 1);
            var l1 = outputs[0];
            var predicted = Array.IndexOf(l1, l1.Max());
            correct += predicted == report.Model.Tree.AncestorOfLeaf(img.Leaf, 0) ? 1 : 0;
        }

        var accuracy = (double)correct / valSet.Images.Count;
        var majority = valSet.Images.GroupBy(i => report.Model.Tree.AncestorOfLeaf(i.Leaf, 0)).Max(g => g.Count()) / (double)valSet.Images.Count;
        Assert.True(accuracy >= majority + 0.15, $"L1 top-1 {accuracy:P1} does not beat the majority class ({majority:P1}) clearly");
    }

    [Fact]
    public void Run_UnreadableImage_IsListedAndSkipped()
    {
        using var dir = new TempFolder("bad");
        var train = SubsetFolder(dir, "train", 1);
        var leafDir = Path.Combine(train, TestData.Tree.Leaves[0].Path);
        var bad = Path.Combine(leafDir, "broken.png");
        File.WriteAllBytes(bad, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var options = Small(train, null, Path.Combine(dir.Path, "run"), 1) with { MaxBatchesPerEpoch = 1 };

        var result = new Trainer(options, new PlainReporter(TextWriter.Null)).Run(resume: false, CancellationToken.None);

        var skipped = Assert.Single(result.Skipped);
        Assert.Equal(bad, skipped.Path);
        Assert.True(File.Exists(Path.Combine(Trainer.LastDir(result.RunDir), Checkpoint.StateFile)));
    }

    [Fact]
    public void Run_Cancelled_LeavesLoadableInterruptedCheckpoint()
    {
        using var dir = new TempFolder("cancel");
        var train = SubsetFolder(dir, "train", 2);
        var options = Small(train, null, Path.Combine(dir.Path, "run"), 3);
        using var cts = new CancellationTokenSource();
        var reporter = new CancelAfterFirstBatch(cts);

        Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(options, reporter).Run(resume: false, cts.Token));

        var (model, tree, state) = Checkpoint.LoadModel(Trainer.InterruptedDir(Path.GetFullPath(options.RunDir)));
        using (model)
        {
            Assert.Equal("interrupted", state.Kind);
            Assert.Equal(3, tree.Depth);
            Assert.True(state.GlobalStep >= 1);
        }
    }

    private sealed class CancelInEpoch(CancellationTokenSource cts, int epoch) : ITrainingReporter
    {
        public void Info(string message)
        {
        }

        public void Warn(string message)
        {
        }

        public void BatchDone(BatchProgress p)
        {
            if (p.Epoch == epoch)
            {
                cts.Cancel();
            }
        }

        public void EpochDone(EpochRecord record, int epochs)
        {
        }
    }

    private sealed class CancelAfterFirstBatch(CancellationTokenSource cts) : ITrainingReporter
    {
        public void Info(string message)
        {
        }

        public void Warn(string message)
        {
        }

        public void BatchDone(BatchProgress p) => cts.Cancel();

        public void EpochDone(EpochRecord record, int epochs)
        {
        }
    }
}
