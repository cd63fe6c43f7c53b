using System.Diagnostics;
using System.Text.Json.Nodes;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Training.Data;
using FmaEdge.Training.Export;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Native;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Reporting;
using FmaEdge.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FmaEdge.Training.Training;

/// <summary>What a finished (or resumed-to-the-end) run produced.</summary>
public sealed record TrainingResult(
    string RunDir,
    string LastCheckpoint,
    string? BestCheckpoint,
    TrainingHistory History,
    LabeledDataset Train,
    LabeledDataset Val,
    IReadOnlyList<SkippedImage> Skipped)
{
    /// <summary>The images set aside for calibration (never trained on, never used to pick the epoch); empty when
    /// the run has none.</summary>
    public LabeledDataset? Calib { get; init; }

    /// <summary>The checkpoint to ship: best on validation when there is validation data, else the last.</summary>
    public string FinalCheckpoint => BestCheckpoint ?? LastCheckpoint;
}

/// <summary>Runs training: data, model, AdamW with warm-up + cosine, per-epoch checkpoints (RUNDIR/checkpoints/last
/// and best), history.json, exact resume, Ctrl-C safety. Every epoch re-seeds torch and the data order from
/// (seed, epoch), which is what makes a resumed run identical to an uninterrupted one. One run per instance;
/// not thread-safe, and torch's random generator is process-wide: run one trainer per process for reproducibility.</summary>
public sealed class Trainer(TrainingOptions options, ITrainingReporter reporter)
{
    public const string CheckpointsDir = "checkpoints";
    public const string HistoryFile = "history.json";

    public static string LastDir(string runDir) => Path.Combine(runDir, CheckpointsDir, "last");

    public static string BestDir(string runDir) => Path.Combine(runDir, CheckpointsDir, "best");

    public static string InterruptedDir(string runDir) => Path.Combine(runDir, CheckpointsDir, "interrupted");

    /// <summary>Trains from scratch, or continues from RUNDIR/checkpoints/last when <paramref name="resume"/> is set.
    /// On cancellation saves RUNDIR/checkpoints/interrupted and throws <see cref="OperationCanceledException"/>.</summary>
    public TrainingResult Run(bool resume, CancellationToken ct)
    {
        options.Validate();
        TorchNative.EnsureLoaded();
        torch.set_num_threads(options.EffectiveThreads);
        var device = ResolveDevice(options.Device);
        var runDir = Path.GetFullPath(options.RunDir);
        Directory.CreateDirectory(runDir);

        CheckpointState? resumeState = null;
        var opts = options;
        if (resume)
        {
            resumeState = Checkpoint.ReadState(LastDir(runDir));
            // The recipe is the checkpoint's: a resumed run must continue the same schedule.
            opts = resumeState.Options with { RunDir = options.RunDir, Threads = options.Threads, LoaderThreads = options.LoaderThreads, Epochs = Math.Max(options.Epochs, resumeState.Options.Epochs) };
            reporter.Info($"resuming {runDir} after epoch {resumeState.CompletedEpochs}");
        }

        if (resumeState is null)
        {
            // A fresh run owns its folder: stale best/interrupted checkpoints of an earlier run must not survive.
            foreach (var stale in new[] { BestDir(runDir), InterruptedDir(runDir) }.Where(Directory.Exists))
            {
                Directory.Delete(stale, recursive: true);
            }
        }

        var (train, val, calib) = (opts.Data with { Seed = opts.Seed }).LoadWithCalibration();
        var tree = train.Tree;
        if (resumeState is not null && TaxonomyLoader.ToJson(tree) != resumeState.Tree)
        {
            throw new InvalidOperationException("the data's category tree differs from the checkpoint's; resume needs the same classes");
        }

        new LossOptions { Kind = opts.LossKind, Alphas = opts.Alphas, LabelSmoothing = opts.LabelSmoothing, Beta = opts.Beta, PLoss = opts.PLoss }.Validate(tree.Depth);
        reporter.Info($"tree {tree}; {train.Images.Count} training, {val.Images.Count} validation and {calib.Images.Count} calibration images");

        var size = opts.Model.ImageSize;
        var pre = new ImagePreprocessor(opts.Preprocess, size, size);
        var loaderThreads = opts.EffectiveLoaderThreads;
        var sw = Stopwatch.StartNew();
        using var trainCache = ImageCache.Build(train, pre, Environment.ProcessorCount, ct);
        using var valCache = ImageCache.Build(val, pre, Environment.ProcessorCount, ct);
        var skipped = trainCache.Skipped.Concat(valCache.Skipped).ToList();
        foreach (var s in skipped)
        {
            reporter.Warn($"skipped unreadable image ({s.Reason}): {s.Path}");
        }

        reporter.Info($"decoded {trainCache.Count + valCache.Count} images at {size}x{size} in {sw.Elapsed.TotalSeconds:F1}s");
        if (trainCache.Count == 0)
        {
            throw new InvalidOperationException("no readable training images");
        }

        // Before the run's seed is set, so the check does not change what the run draws.
        KernelCheckResult? kernels = null;
        if (device.type == DeviceType.CPU && KernelCheck.Covers(opts.Model))
        {
            kernels = KernelCheck.Run(opts.Model, tree);
            if (!kernels.Passed)
            {
                // The known bad kernels are oneDNN's non-overlapping convolutions: run those as matrix products and check again.
                reporter.Warn(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"kernel check: oneDNN's float32 kernels are wrong on this CPU ({kernels.WorstParameter} gradient off by {kernels.WorstRelativeError:E2}); running the stem and downsample convolutions as matrix products instead"));
                Conv2dLayer.PatchesAsMatMul = true;
                kernels = KernelCheck.Run(opts.Model, tree) with { Fallback = KernelCheckResult.PatchesAsMatMul };
            }

            var what = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{kernels.WorstParameter} differs from float64 by {kernels.WorstRelativeError:E2} (relative; tolerance {KernelCheck.Tolerance:E0})");
            if (kernels.Passed)
            {
                reporter.Info(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"kernel check: float32 gradients match float64 (worst {kernels.WorstRelativeError:E1}, {kernels.Seconds:F1}s)"));
            }
            else if (opts.SkipKernelCheck)
            {
                reporter.Warn($"kernel check failed, training anyway (--skip-kernel-check): {what}");
            }
            else
            {
                throw new InvalidOperationException(
                    $"libtorch's CPU kernels compute this model's gradients wrongly on this machine, even with the stem and downsample " +
                    $"convolutions as matrix products: {what} (docs/training.md, Reproducibility); training would silently learn something else. " +
                    "Pass --skip-kernel-check to train anyway");
            }
        }

        torch.manual_seed(DeterministicRandom.Seed(opts.Seed, -1));
        // A run with a weight average checkpoints the average as weights.dat and the trained weights beside it.
        var liveWeights = Path.Combine(LastDir(runDir), Checkpoint.LiveWeightsFile);
        var resumeAverage = resumeState is not null && File.Exists(liveWeights);
        using var model = new HierarchicalClassifier(opts.Model, tree);
        if (resumeState is null && opts.Pretrained is not null)
        {
            var n = PretrainedWeights.Load(model, opts.Pretrained);
            reporter.Info($"loaded {n} pretrained tensors from {opts.Pretrained}");
        }
        else if (resumeState is not null)
        {
            model.load(resumeAverage ? liveWeights : Path.Combine(LastDir(runDir), Checkpoint.WeightsFile));
        }

        model.to(device);
        using var averageModel = opts.Ema > 0 ? new HierarchicalClassifier(opts.Model, tree) : null;
        WeightAverage? ema = null;
        if (averageModel is not null)
        {
            if (resumeAverage)
            {
                averageModel.load(Path.Combine(LastDir(runDir), Checkpoint.WeightsFile));
            }

            averageModel.to(device);
            averageModel.eval();
            ema = new WeightAverage(model, averageModel, opts.Ema);
            if (!resumeAverage)
            {
                ema.CopyFromLive();
            }
        }

        using var mixed = opts.Precision == MixedPrecision.BFloat16 ? new MixedPrecision(model, tree, device) : null;

        // What is evaluated, kept as best and exported: the weight average when the run keeps one; the trained
        // weights are then saved beside it.
        var shipped = averageModel ?? model;
        var trainedBesideAverage = averageModel is null ? null : model;
        using var optimizer = CreateOptimizer(model, opts);
        if (resumeState is not null)
        {
            Checkpoint.LoadOptimizer(LastDir(runDir), optimizer);
        }

        using var loss = new HierarchicalLoss(new LossOptions { Kind = opts.LossKind, Alphas = opts.Alphas, LabelSmoothing = opts.LabelSmoothing, Beta = opts.Beta, PLoss = opts.PLoss }, tree, device);
        var levelWeights = opts.BCnn ? LevelWeightSchedule.BCnn(tree.Depth) : LevelWeightSchedule.Constant(tree.Depth);
        var batchesPerEpoch = BatchesPerEpoch(trainCache.Count, opts);
        var schedule = new LearningRateSchedule(opts.LearningRate, opts.MinLearningRate,
            (long)Math.Round(opts.WarmupEpochs * batchesPerEpoch), (long)opts.Epochs * batchesPerEpoch, opts.LrSchedule == "epoch" ? batchesPerEpoch : 0);

        var historyPath = Path.Combine(runDir, HistoryFile);
        var history = resumeState is not null && File.Exists(historyPath) ? TrainingHistory.Load(historyPath) : new TrainingHistory();
        history.Epochs.RemoveAll(e => e.Epoch > (resumeState?.CompletedEpochs ?? 0));
        history.Environment = RunEnvironment.Capture(opts.EffectiveThreads, loaderThreads);
        if (kernels is not null)
        {
            history.Environment["kernel_check"] = new System.Text.Json.Nodes.JsonObject
            {
                ["passed"] = kernels.Passed,
                ["worst_parameter"] = kernels.WorstParameter,
                ["worst_relative_error"] = double.IsFinite(kernels.WorstRelativeError) ? kernels.WorstRelativeError : null,
                ["fallback"] = kernels.Fallback,
            };
        }
        var step = resumeState?.GlobalStep ?? 0;
        var best = resumeState?.BestMetric;
        var bestEpoch = resumeState?.BestEpoch ?? 0;
        var treeJson = TaxonomyLoader.ToJson(tree);
        string? bestDir = File.Exists(Path.Combine(BestDir(runDir), Checkpoint.StateFile)) && resumeState is not null ? BestDir(runDir) : null;

        for (var epoch = resumeState?.CompletedEpochs ?? 0; epoch < opts.Epochs; epoch++)
        {
            var record = TrainEpoch(model, mixed, ema, optimizer, loss, trainCache, pre, tree, opts, epoch, schedule, levelWeights.For(epoch, opts.Epochs), batchesPerEpoch, loaderThreads, device, ref step,
                () => Checkpoint.Save(InterruptedDir(runDir), shipped, optimizer, new CheckpointState
                {
                    Kind = "interrupted",
                    CompletedEpochs = epoch,
                    GlobalStep = step,
                    BestMetric = best,
                    BestEpoch = bestEpoch,
                    Options = opts,
                    Tree = treeJson,
                }, trainedBesideAverage), ct);

            if (valCache.Count > 0)
            {
                var (valLoss, top1) = Evaluate(shipped, valCache, pre, tree, opts, loaderThreads, device, ct);
                record = record with { ValLoss = valLoss, ValTop1 = top1 };
            }

            history.Epochs.Add(record);
            var state = new CheckpointState
            {
                Kind = "epoch",
                CompletedEpochs = epoch + 1,
                GlobalStep = step,
                Options = opts,
                Tree = treeJson,
                ValTop1 = record.ValTop1,
                BestMetric = best,
                BestEpoch = bestEpoch,
            };
            if (record.ValTop1 is { } t && BestScore(t, opts) is var score && (best is null || score > best.Value))
            {
                best = score;
                bestEpoch = epoch + 1;
                state = state with { BestMetric = best, BestEpoch = bestEpoch };
                Checkpoint.Save(BestDir(runDir), shipped, null, state with { Kind = "best" });
                bestDir = BestDir(runDir);
            }

            Checkpoint.Save(LastDir(runDir), shipped, optimizer, state, trainedBesideAverage);
            history.Save(historyPath);
            reporter.EpochDone(record, opts.Epochs);
        }

        return new TrainingResult(runDir, LastDir(runDir), bestDir, history, train, val, skipped) { Calib = calib };
    }

    /// <summary>Exports a checkpoint of a run to ONNX, verified on up to 32 real validation (else training) images.</summary>
    public static ExportResult Export(string checkpoint, string outPath, IReadOnlyList<string>? verifyImages = null, JsonObject? extraTraining = null)
    {
        TorchNative.EnsureLoaded();
        var (model, tree, state) = Checkpoint.LoadModel(checkpoint);
        using (model)
        {
            var o = state.Options;
            var images = verifyImages ?? VerificationImages(o);
            var training = new JsonObject
            {
                ["epochs"] = state.CompletedEpochs,
                ["kind"] = state.Kind,
                ["seed"] = o.Seed,
                ["batch"] = o.BatchSize,
                ["lr"] = o.LearningRate,
                ["weight_decay"] = o.WeightDecay,
                ["weight_decay_on"] = o.WeightDecayOn,
                ["lr_schedule"] = o.LrSchedule,
                ["label_smoothing"] = o.LabelSmoothing,
                ["bcnn"] = o.BCnn,
                ["sampling"] = o.Sampling,
                ["best_by"] = o.BestBy,
                ["ema"] = o.Ema,
                ["precision"] = o.Precision,
                ["pretrained"] = o.Pretrained is null ? null : Path.GetFileName(o.Pretrained),
                ["best_val_score"] = state.BestMetric,
                ["val_top1"] = state.ValTop1 is null ? null : new JsonArray(state.ValTop1.Select(v => (JsonNode?)v).ToArray()),
            };
            if (extraTraining is not null)
            {
                foreach (var (k, v) in extraTraining)
                {
                    training[k] = v?.DeepClone();
                }
            }

            var description = new ExportDescription { Loss = o.Loss, Preprocess = o.Preprocess, Training = training };
            return OnnxExporter.Export(model, tree, description, outPath, images);
        }
    }

    /// <summary>Up to 32 real images for export verification: from the validation data, else training data.</summary>
    public static IReadOnlyList<string> VerificationImages(TrainingOptions o)
    {
        try
        {
            var (train, val) = (o.Data with { Seed = o.Seed }).Load();
            var pool = val.Images.Count > 0 ? val.Images : train.Images;
            // One per leaf first, so every class's path through the heads is exercised.
            return pool.GroupBy(i => i.Leaf).SelectMany(g => g.Take(2)).Select(i => i.Path).Take(32).ToList();
        }
        catch (Exception e) when (e is TaxonomyException or IOException)
        {
            throw new ExportVerificationException($"the run's data is needed to verify the export and cannot be read ({e.Message}); pass verification images explicitly");
        }
    }

    internal static int BatchesPerEpoch(int images, TrainingOptions o)
    {
        var n = (images + o.BatchSize - 1) / o.BatchSize;
        return o.MaxBatchesPerEpoch > 0 ? Math.Min(n, o.MaxBatchesPerEpoch) : n;
    }

    internal static AdamW CreateOptimizer(HierarchicalClassifier model, TrainingOptions o)
    {
        // "weights": no weight decay on biases, norms and layer-scale gammas (1-D tensors), as timm does.
        var all = o.WeightDecayOn == "all";
        var decay = model.parameters().Where(p => all || p.dim() > 1).ToList();
        var noDecay = model.parameters().Where(p => !all && p.dim() <= 1).ToList();
        return optim.AdamW(
        [
            new AdamW.ParamGroup(decay, lr: o.LearningRate, weight_decay: o.WeightDecay),
            new AdamW.ParamGroup(noDecay, lr: o.LearningRate, weight_decay: 0),
        ], lr: o.LearningRate);
    }

    /// <summary>The validation score that picks the best epoch (<see cref="TrainingOptions.BestBy"/>).</summary>
    internal static double BestScore(double[] valTop1, TrainingOptions o) => o.BestBy == "levels" ? valTop1.Average() : valTop1[^1];

    /// <summary>The training images' order for one epoch (indices into <paramref name="leaves"/>, the leaf of each
    /// image), from (seed, epoch) alone so that a resumed run draws the same.</summary>
    internal static int[] EpochOrder(IReadOnlyList<int> leaves, TrainingOptions o, int epoch)
    {
        var rng = DeterministicRandom.Create(o.Seed, epoch, 1);
        var n = leaves.Count;
        int[] order;
        if (o.Sampling != "shuffle")
        {
            // Draw a leaf with probability proportional to its size to the power 0 (balanced) or 1/2 (sqrt), then
            // one of its images: rare leaves are seen more often, without "balanced"'s cost to the large ones.
            var byLeaf = Enumerable.Range(0, n).GroupBy(i => leaves[i]).Select(g => g.ToArray()).ToArray();
            var power = o.Sampling == "balanced" ? 0.0 : 0.5;
            var cumulative = new double[byLeaf.Length];
            var total = 0.0;
            for (var l = 0; l < byLeaf.Length; l++)
            {
                total += Math.Pow(byLeaf[l].Length, power);
                cumulative[l] = total;
            }

            order = new int[n];
            for (var i = 0; i < n; i++)
            {
                var at = Array.BinarySearch(cumulative, rng.NextDouble() * total);
                var leaf = byLeaf[Math.Min(at < 0 ? ~at : at, byLeaf.Length - 1)];
                order[i] = leaf[rng.Next(leaf.Length)];
            }
        }
        else
        {
            order = Enumerable.Range(0, n).ToArray();
            for (var i = n - 1; i > 0; i--)
            {
                var j = rng.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }

        var max = o.MaxBatchesPerEpoch > 0 ? Math.Min(n, o.MaxBatchesPerEpoch * o.BatchSize) : n;
        return max < n ? order[..max] : order;
    }

    private EpochRecord TrainEpoch(HierarchicalClassifier model, MixedPrecision? mixed, WeightAverage? ema, AdamW optimizer, HierarchicalLoss loss, ImageCache cache, ImagePreprocessor pre,
        CategoryTree tree, TrainingOptions o, int epoch, LearningRateSchedule schedule, double[] levelWeights, int batches, int loaderThreads, Device device,
        ref long step, Action onCancel, CancellationToken ct)
    {
        model.train();
        torch.manual_seed(DeterministicRandom.Seed(o.Seed, epoch, 3));
        var order = EpochOrder(cache.Leaves, o, epoch);
        var levels = tree.Depth;
        var sumLevel = new double[levels];
        double sumLoss = 0, sumDep = 0;
        long seen = 0;
        var sw = Stopwatch.StartNew();
        var lr = schedule.At(step);
        var len = pre.TensorLength;
        var size = o.Model.ImageSize;
        using var loader = new BatchLoader(cache, order, o.BatchSize, tree, pre, o.Augment, DeterministicRandom.Seed(o.Seed, epoch, 2), loaderThreads, ct);
        foreach (var batch in loader.Batches())
        {
            if (ct.IsCancellationRequested)
            {
                loader.Return(batch);
                onCancel();
                ct.ThrowIfCancellationRequested();
            }

            lr = schedule.At(step);
            foreach (var g in optimizer.ParamGroups)
            {
                g.LearningRate = lr;
            }

            var n = batch.Count;
            float[] perLevel;
            float total, dep;
            using (var scope = NewDisposeScope())
            {
                var x = (n * len == batch.Images.Length ? tensor(batch.Images, [n, 3, size, size]) : tensor(batch.Images[..(n * len)], [n, 3, size, size])).to(device);
                var targets = batch.Targets.Select(t => (n == t.Length ? tensor(t) : tensor(t[..n])).to(device)).ToArray();
                optimizer.zero_grad();
                mixed?.PullWeights();
                var logits = mixed is null ? model.forward(x) : mixed.Forward(x);
                var value = loss.Compute(logits, targets, levelWeights);
                value.Total.backward();
                mixed?.PushGradients();
                if (o.GradClip > 0)
                {
                    nn.utils.clip_grad_norm_(model.parameters(), o.GradClip);
                }

                SafeStep.Step(optimizer);
                ema?.Update(step);
                perLevel = value.PerLevel;
                total = value.Total.detach().cpu().item<float>();
                dep = value.Dependence;
            }

            var number = batch.Number;
            loader.Return(batch);
            if (!float.IsFinite(total))
            {
                throw new InvalidOperationException($"the loss became {total} at epoch {epoch + 1}, batch {number + 1}; lower the learning rate");
            }

            step++;
            seen += n;
            sumLoss += total * n;
            sumDep += dep * n;
            for (var l = 0; l < levels; l++)
            {
                sumLevel[l] += perLevel[l] * n;
            }

            var ips = seen / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
            var remaining = TimeSpan.FromSeconds((order.Length - seen) / Math.Max(1e-9, ips));
            reporter.BatchDone(new BatchProgress(epoch + 1, o.Epochs, number + 1, batches, n, perLevel, total, ips, remaining, lr));
        }

        ct.ThrowIfCancellationRequested();
        var seconds = sw.Elapsed.TotalSeconds;
        return new EpochRecord
        {
            Epoch = epoch + 1,
            Seconds = seconds,
            Lr = lr,
            TrainLoss = sumLoss / Math.Max(1, seen),
            TrainLossPerLevel = sumLevel.Select(s => s / Math.Max(1, seen)).ToArray(),
            TrainDependence = sumDep / Math.Max(1, seen),
            ImagesPerSec = seen / Math.Max(1e-9, seconds),
        };
    }

    /// <summary>Mean summed per-level cross-entropy and per-level top-1 on a cached set (eval mode, no augmentation).</summary>
    internal static (double Loss, double[] Top1) Evaluate(HierarchicalClassifier model, ImageCache cache, ImagePreprocessor pre, CategoryTree tree,
        TrainingOptions o, int loaderThreads, Device device, CancellationToken ct)
    {
        var wasTraining = model.training;
        model.eval();
        var levels = tree.Depth;
        var correct = new long[levels];
        double lossSum = 0;
        var size = o.Model.ImageSize;
        var len = pre.TensorLength;
        try
        {
            using var loader = new BatchLoader(cache, Enumerable.Range(0, cache.Count).ToArray(), o.BatchSize, tree, pre, null, 0, loaderThreads, ct);
            using var _ = no_grad();
            foreach (var batch in loader.Batches())
            {
                var n = batch.Count;
                using (var scope = NewDisposeScope())
                {
                    var x = (n * len == batch.Images.Length ? tensor(batch.Images, [n, 3, size, size]) : tensor(batch.Images[..(n * len)], [n, 3, size, size])).to(device);
                    var logits = model.forward(x);
                    for (var l = 0; l < levels; l++)
                    {
                        var t = tensor(batch.Targets[l][..n]).to(device);
                        lossSum += nn.functional.cross_entropy(logits[l], t, reduction: nn.Reduction.Sum).cpu().item<float>();
                        correct[l] += logits[l].argmax(1).eq(t).sum().cpu().item<long>();
                    }
                }

                loader.Return(batch);
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        return (lossSum / Math.Max(1, cache.Count), correct.Select(c => (double)c / Math.Max(1, cache.Count)).ToArray());
    }

    private static Device ResolveDevice(string name)
    {
        if (name == "cpu")
        {
            return CPU;
        }

        if (!cuda.is_available())
        {
            throw new ArgumentException($"--device {name}: CUDA is not available (this build uses the CPU libtorch package; install a CUDA TorchSharp build and a GPU driver)");
        }

        return torch.device(name);
    }
}
