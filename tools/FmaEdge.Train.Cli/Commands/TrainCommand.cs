using System.CommandLine;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Calibration;
using FmaEdge.Training.Data;
using FmaEdge.Training.Export;
using FmaEdge.Training.Models;
using FmaEdge.Training.Native;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Training;
using Spectre.Console;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>fma-train train: options -> TrainingOptions -> Trainer -> export -> post-training hook.</summary>
internal static class TrainCommand
{
    /// <summary>Share of each leaf of the training data set aside for calibration by default.</summary>
    public const double DefaultCalibFraction = 0.15;

    internal sealed class Opts
    {
        public readonly Option<string?> Data = new("--data") { Description = "Training images: ROOT/<level 1>/.../<leaf>/*.png (or the base folder of --manifest paths)" };
        public readonly Option<string?> Val = new("--val") { Description = "Separate validation folder with the same tree" };
        public readonly Option<double> ValFraction = new("--val-fraction") { Description = "Hold out this fraction of each leaf for validation (reproducible per seed)", DefaultValueFactory = _ => 0 };
        public readonly Option<string?> Calib = new("--calib") { Description = "Separate calibration folder with the same tree (temperatures and coarse thresholds are fitted on it)" };
        public readonly Option<double> CalibFraction = new("--calib-fraction") { Description = "Without --calib: set aside this fraction of each leaf of the training data for calibration (fixed split seed; 0 = calibrate on validation)", DefaultValueFactory = _ => DefaultCalibFraction };
        public readonly Option<double> TargetPrecision = new("--target-precision") { Description = "Precision every level's coarse answers must reach", DefaultValueFactory = _ => ThresholdCalibrator.DefaultTargetPrecision };
        public readonly Option<double> Confidence = new("--confidence") { Description = "Probability that the target holds on new images from the same distribution (exact binomial bound); 0 = point estimate, no guarantee", DefaultValueFactory = _ => ThresholdCalibrator.DefaultConfidence };
        public readonly Option<string?> Tree = new("--tree") { Description = "Category tree file (JSON/YAML); pins class order" };
        public readonly Option<string?> Manifest = new("--manifest") { Description = "CSV manifest path,leaf (needs --tree)" };
        public readonly Option<string> Out = new("--out") { Description = "Run folder (model.onnx, history.json, checkpoints/)", Required = true };
        public readonly Option<string> Model = new("--model") { Description = "convnext_atto|femto|pico|nano|tiny|small, resnet50_cbam, vit_tiny, vit_small", DefaultValueFactory = _ => "convnext_atto" };
        public readonly Option<string> Head = new("--head") { Description = "flat|independent|shared", DefaultValueFactory = _ => "independent" };
        public readonly Option<int> HeadHidden = new("--head-hidden") { Description = "Hidden width H of the shared head", DefaultValueFactory = _ => 256 };
        public readonly Option<string> Loss = new("--loss") { Description = "ce|dhc|dhc-soft", DefaultValueFactory = _ => "ce" };
        public readonly Option<bool> BCnn = new("--bcnn") { Description = "B-CNN schedule of level weights (coarse to fine over the epochs)" };
        public readonly Option<string?> Alphas = new("--alphas") { Description = "Per-level loss weights, comma-separated (default 1 each)" };
        public readonly Option<double> Beta = new("--beta") { Description = "Weight of the dependence term of dhc/dhc-soft", DefaultValueFactory = _ => 0.8 };
        public readonly Option<int> ImgSize = new("--img-size") { Description = "Square input size in pixels (32..4096)", DefaultValueFactory = _ => 112 };
        public readonly Option<int> Epochs = new("--epochs") { Description = "Epochs", DefaultValueFactory = _ => 8 };
        public readonly Option<int> Batch = new("--batch") { Description = "Batch size", DefaultValueFactory = _ => 64 };
        public readonly Option<double> Lr = new("--lr") { Description = "Peak learning rate (AdamW)", DefaultValueFactory = _ => 1e-3 };
        public readonly Option<double> WeightDecay = new("--weight-decay") { Description = "AdamW weight decay (see --weight-decay-on)", DefaultValueFactory = _ => 0.05 };
        public readonly Option<double> Warmup = new("--warmup-epochs") { Description = "Linear warm-up epochs before the cosine decay (0 = none; useful for long runs)", DefaultValueFactory = _ => 0 };
        public readonly Option<double> GradClip = new("--grad-clip") { Description = "Gradient norm clip (0 = off)", DefaultValueFactory = _ => 0 };
        public readonly Option<double> DropPath = new("--drop-path") { Description = "Stochastic depth rate", DefaultValueFactory = _ => 0 };
        public readonly Option<int> Seed = new("--seed") { Description = "Seed: same seed, data and threads -> same run", DefaultValueFactory = _ => 0 };
        public readonly Option<string> Device = new("--device") { Description = "cpu|cuda|cuda:N", DefaultValueFactory = _ => "cpu" };
        public readonly Option<string?> Pretrained = new("--pretrained") { Description = "timm ConvNeXt weights (.safetensors) for the backbone" };
        public readonly Option<string> Sampling = new("--sampling") { Description = "shuffle: every image once per epoch; sqrt: leaves drawn in proportion to the square root of their size; balanced: every leaf equally often", DefaultValueFactory = _ => "shuffle" };
        public readonly Option<string> BestBy = new("--best-by") { Description = "Epoch kept as best on validation: leaf (leaf top-1) or levels (mean top-1 over all levels)", DefaultValueFactory = _ => "leaf" };
        public readonly Option<double> Ema = new("--ema") { Description = "Keep an exponential moving average of the weights with this decay per step (e.g. 0.998) and evaluate, keep and export it; 0 = off", DefaultValueFactory = _ => 0 };
        public readonly Option<string> Precision = new("--precision") { Description = "fp32, or bf16: forward and backward in bfloat16 with float32 master weights (1.6-1.7x measured on an AVX-512 BF16 CPU, about 2 points lower leaf accuracy; docs/training.md)", DefaultValueFactory = _ => "fp32" };
        public readonly Option<double> LabelSmoothing = new("--label-smoothing") { Description = "Label smoothing for the cross-entropy terms", DefaultValueFactory = _ => 0 };
        public readonly Option<int> Threads = new("--threads") { Description = "Torch threads (default: all cores)", DefaultValueFactory = _ => 0 };
        public readonly Option<int> LoaderThreads = new("--loader-threads") { Description = "Background batch-preparation threads (default: cores/4, at least 1)", DefaultValueFactory = _ => 0 };
        public readonly Option<bool> NoAugment = new("--no-augment") { Description = "Turn off all augmentation" };
        public readonly Option<bool> NoFlip = new("--no-flip") { Description = "No horizontal/vertical flips" };
        public readonly Option<bool> NoRotate = new("--no-rotate") { Description = "No 90-degree rotations" };
        public readonly Option<double> Brightness = new("--brightness") { Description = "Brightness jitter, fraction of full scale", DefaultValueFactory = _ => 0.1 };
        public readonly Option<double> Contrast = new("--contrast") { Description = "Contrast jitter (factor 1 +- c)", DefaultValueFactory = _ => 0.1 };
        public readonly Option<string> Resize = new("--resize") { Description = "stretch|letterbox|center-crop", DefaultValueFactory = _ => ResizeModes.Stretch };
        public readonly Option<string> Interpolation = new("--interpolation") { Description = "Resize filter: linear|area|cubic|nearest (stored in the model)", DefaultValueFactory = _ => "linear" };
        public readonly Option<string> LrSchedule = new("--lr-schedule") { Description = "epoch: cosine value held per epoch (PyTorch CosineAnnealingLR); step: decays every batch", DefaultValueFactory = _ => "epoch" };
        public readonly Option<string> WeightDecayOn = new("--weight-decay-on") { Description = "all: every parameter (plain AdamW); weights: not biases, norms, layer scales (timm)", DefaultValueFactory = _ => "all" };
        public readonly Option<bool> Resume = new("--resume") { Description = "Continue the run in --out from its last checkpoint" };
        public readonly Option<int> MaxBatches = new("--max-batches") { Description = "Cap batches per epoch (quick trials)", DefaultValueFactory = _ => 0 };
        public readonly Option<bool> SkipKernelCheck = new("--skip-kernel-check") { Description = "Train even if this CPU's kernels compute the model's gradients wrongly (checked against float64 at start)" };

        public IEnumerable<Option> All() =>
        [
            Data, Val, ValFraction, Calib, CalibFraction, TargetPrecision, Confidence, Tree, Manifest, Out, Model, Head, HeadHidden, Loss, BCnn, Alphas, Beta, ImgSize, Epochs, Batch, Lr,
            WeightDecay, Warmup, GradClip, DropPath, Seed, Device, Pretrained, Sampling, BestBy, Ema, Precision, LabelSmoothing, Threads, LoaderThreads,
            NoAugment, NoFlip, NoRotate, Brightness, Contrast, Resize, Interpolation, LrSchedule, WeightDecayOn, Resume, MaxBatches, SkipKernelCheck,
        ];

        public TrainingOptions ToOptions(ParseResult r)
        {
            var augment = r.GetValue(NoAugment)
                ? AugmentationOptions.None
                : new AugmentationOptions
                {
                    HorizontalFlip = !r.GetValue(NoFlip),
                    VerticalFlip = !r.GetValue(NoFlip),
                    Rotate90 = !r.GetValue(NoRotate),
                    Brightness = r.GetValue(Brightness),
                    Contrast = r.GetValue(Contrast),
                };
            var alphas = r.GetValue(Alphas)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(a => double.Parse(a, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            return new TrainingOptions
            {
                Data = new DatasetSource
                {
                    DataDir = Full(r.GetValue(Data)),
                    ValDir = Full(r.GetValue(Val)),
                    ValFraction = r.GetValue(ValFraction),
                    CalibDir = Full(r.GetValue(Calib)),
                    CalibFraction = r.GetValue(Calib) is null ? r.GetValue(CalibFraction) : 0,
                    TreeFile = Full(r.GetValue(Tree)),
                    ManifestCsv = Full(r.GetValue(Manifest)),
                },
                RunDir = r.GetValue(Out)!,
                Model = new ModelConfig
                {
                    Model = BackboneRegistry.Canonical(r.GetValue(Model)!),
                    Head = HeadKinds.Parse(r.GetValue(Head)!).Name(),
                    HeadHidden = r.GetValue(HeadHidden),
                    DropPath = r.GetValue(DropPath),
                    ImageSize = r.GetValue(ImgSize),
                },
                Loss = r.GetValue(Loss)!,
                BCnn = r.GetValue(BCnn),
                Alphas = alphas,
                Beta = r.GetValue(Beta),
                Epochs = r.GetValue(Epochs),
                BatchSize = r.GetValue(Batch),
                LearningRate = r.GetValue(Lr),
                WeightDecay = r.GetValue(WeightDecay),
                WeightDecayOn = r.GetValue(WeightDecayOn)!,
                LrSchedule = r.GetValue(LrSchedule)!,
                WarmupEpochs = r.GetValue(Warmup),
                GradClip = r.GetValue(GradClip),
                Seed = r.GetValue(Seed),
                Device = r.GetValue(Device)!,
                Pretrained = Full(r.GetValue(Pretrained)),
                Sampling = r.GetValue(Sampling)!,
                BestBy = r.GetValue(BestBy)!,
                Ema = r.GetValue(Ema),
                Precision = r.GetValue(Precision)!,
                LabelSmoothing = r.GetValue(LabelSmoothing),
                Threads = r.GetValue(Threads),
                LoaderThreads = r.GetValue(LoaderThreads),
                Augment = augment,
                Preprocess = new PreprocessSpec { Resize = r.GetValue(Resize)!, Interpolation = r.GetValue(Interpolation)! },
                MaxBatchesPerEpoch = r.GetValue(MaxBatches),
                SkipKernelCheck = r.GetValue(SkipKernelCheck),
            };
        }

        private static string? Full(string? p) => p is null ? null : Path.GetFullPath(p);
    }

    public static Command Create()
    {
        var o = new Opts();
        var cmd = new Command("train", "Train a model and export RUNDIR/model.onnx (verified against ONNX Runtime).");
        foreach (var opt in o.All())
        {
            cmd.Options.Add(opt);
        }

        cmd.SetAction(r => Run(o, r));
        return cmd;
    }

    private static int Run(Opts o, ParseResult r)
    {
        TrainingOptions options;
        try
        {
            options = o.ToOptions(r);
            options.Validate();
            TorchNative.EnsureLoaded();
        }
        catch (Exception e) when (e is ArgumentException or FormatException or TorchNativeException)
        {
            Console.Error.WriteLine("fma-train train: " + e.Message);
            return 2;
        }

        using var cts = TrainCli.CancelOnCtrlC();
        var interactive = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        try
        {
            TrainingResult result;
            ITrainingReporter plain = new PlainReporter(Console.Out);
            if (interactive)
            {
                TrainingResult? inner = null;
                AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                    .Start(ctx => inner = new Trainer(options, new SpectreReporter(ctx)).Run(r.GetValue(o.Resume), cts.Token));
                result = inner!;
            }
            else
            {
                result = new Trainer(options, plain).Run(r.GetValue(o.Resume), cts.Token);
            }

            var modelPath = Path.Combine(result.RunDir, "model.onnx");
            var verify = result.Val.Images.Count > 0 ? result.Val.Images : result.Train.Images;
            var export = Trainer.Export(result.FinalCheckpoint, modelPath,
                verify.GroupBy(i => i.Leaf).SelectMany(g => g.Take(2)).Select(i => i.Path).Take(32).ToList());
            plain.Info($"exported {export.Path} ({export.Model.Bytes / 1024} KiB, sha256 {export.Model.ShortHash}); ONNX Runtime matches TorchSharp within {export.MaxAbsDifference:G2} on {export.VerifiedImages} real images");

            // Post-export hook: calibration on val and report.json/report.html (see PostTraining.Run).
            PostTraining.Run(result, export, plain, cts.Token, r.GetValue(o.TargetPrecision), r.GetValue(o.Confidence));
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"stopped. Checkpoints: {Trainer.LastDir(Path.GetFullPath(options.RunDir))} (last full epoch), " +
                $"{Trainer.InterruptedDir(Path.GetFullPath(options.RunDir))} (weights at the stop). Continue with --resume, or export with `fma-train export --checkpoint DIR --out FILE.onnx`.");
            return 130;
        }
        catch (Exception e) when (e is TaxonomyException or ArgumentException or InvalidOperationException or PretrainedWeightsException or ExportVerificationException or InvalidModelException or IOException)
        {
            Console.Error.WriteLine("fma-train train: " + e.Message);
            return 1;
        }
    }
}
