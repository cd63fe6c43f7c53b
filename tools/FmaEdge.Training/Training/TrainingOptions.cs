using System.Text.Json.Serialization;
using FmaEdge.Core.Contract;
using FmaEdge.Training.Data;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;

namespace FmaEdge.Training.Training;

/// <summary>Every setting of a training run, with its default. <see cref="Validate"/> throws
/// <see cref="ArgumentException"/> naming the bad setting. Immutable; stored in each checkpoint.</summary>
public sealed record TrainingOptions
{
    public DatasetSource Data { get; init; } = new();
    public string RunDir { get; init; } = "run";
    public ModelConfig Model { get; init; } = new();
    public string Loss { get; init; } = "ce";
    public IReadOnlyList<double>? Alphas { get; init; }
    public double Beta { get; init; } = 0.8;
    public double PLoss { get; init; } = 3.0;

    /// <summary>B-CNN style shift of level weights from coarse to fine over the epochs.</summary>
    public bool BCnn { get; init; }

    public int Epochs { get; init; } = 8;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 1e-3;
    public double MinLearningRate { get; init; } = 1e-6;

    /// <summary>"epoch": the cosine's value is held for a whole epoch (PyTorch's CosineAnnealingLR stepped once per
    /// epoch, what a plain PyTorch loop does); "step": it decays every batch (timm's default).</summary>
    public string LrSchedule { get; init; } = "epoch";

    public double WeightDecay { get; init; } = 0.05;

    /// <summary>"all": weight decay on every parameter (a plain <c>AdamW(model.parameters())</c>); "weights": only on
    /// weight matrices and kernels, sparing biases, norms and layer-scale gammas (timm's groups).</summary>
    public string WeightDecayOn { get; init; } = "all";
    // Off by default: on the reference recipe (520 steps) a 1-epoch warm-up plus clipping cost ~3 points of leaf top-1 (docs/training.md).
    public double WarmupEpochs { get; init; }
    public double GradClip { get; init; }
    public double LabelSmoothing { get; init; }
    public int Seed { get; init; }
    public string Device { get; init; } = "cpu";

    /// <summary>A timm ConvNeXt safetensors file to start the backbone from (head excluded).</summary>
    public string? Pretrained { get; init; }

    /// <summary>How an epoch draws its images: "shuffle" (each image once), "sqrt" (a leaf with probability
    /// proportional to the square root of its image count, then one of its images; with replacement) or "balanced"
    /// (every leaf equally often; with replacement).</summary>
    public string Sampling { get; init; } = "shuffle";

    /// <summary>Which epoch is kept as best on validation: "leaf" (the leaf level's top-1) or "levels" (the mean of
    /// every level's top-1, so a run that gains at the coarse levels is not passed over for a leaf point).</summary>
    public string BestBy { get; init; } = "leaf";

    /// <summary>Decay of the weight average (EMA) evaluated, kept as best and exported; 0 = no average, the trained
    /// weights themselves (see <see cref="WeightAverage"/>).</summary>
    public double Ema { get; init; }

    /// <summary>"fp32", or "bf16": forward and backward in bfloat16 with float32 master weights (<see cref="MixedPrecision"/>).</summary>
    public string Precision { get; init; } = MixedPrecision.Float32;

    public AugmentationOptions Augment { get; init; } = new();
    /// <summary>Resize and normalisation, stored in the exported model. Bilinear resize by default: on the reference
    /// recipe it trained better than area (docs/training.md); the contract's own default stays area for older files.</summary>
    public PreprocessSpec Preprocess { get; init; } = new() { Interpolation = "linear" };

    /// <summary>Torch compute threads (0 = number of cores).</summary>
    public int Threads { get; init; }

    /// <summary>Threads preparing batches in the background (0 = 1 on up to 4 cores, else cores/4).</summary>
    public int LoaderThreads { get; init; }

    /// <summary>Stop after this many batches per epoch (0 = all); for quick benchmarks and tests.</summary>
    public int MaxBatchesPerEpoch { get; init; }

    /// <summary>Train even when <see cref="KernelCheck"/> finds this machine's CPU kernels computing the model's
    /// gradients wrongly (the run then learns something else; the report says so).</summary>
    public bool SkipKernelCheck { get; init; }

    [JsonIgnore]
    public LossKind LossKind => LossOptions.ParseKind(Loss);

    public void Validate()
    {
        Model.Validate();
        _ = LossOptions.ParseKind(Loss);
        Augment.Validate();
        Check(Epochs is >= 1 and <= 100_000, $"epochs {Epochs} must be 1..100000");
        Check(BatchSize is >= 1 and <= 65_536, $"batch size {BatchSize} must be 1..65536");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), "learning rate must be positive");
        Check(MinLearningRate >= 0 && MinLearningRate <= LearningRate, "minimum learning rate must be in 0..lr");
        Check(WeightDecay >= 0, "weight decay must be >= 0");
        Check(WarmupEpochs >= 0 && WarmupEpochs <= Epochs, "warm-up epochs must be in 0..epochs");
        Check(GradClip >= 0, "gradient clipping norm must be >= 0 (0 = off)");
        Check(Threads >= 0 && LoaderThreads >= 0, "thread counts must be >= 0");
        Check(Device is "cpu" or "cuda" || Device.StartsWith("cuda:", StringComparison.Ordinal), $"device '{Device}' is not cpu, cuda or cuda:N");
        Check(Pretrained is null || File.Exists(Pretrained), $"pretrained weights '{Pretrained}' not found");
        Check(!string.IsNullOrWhiteSpace(RunDir), "an output folder is needed");
        Check(Precision is MixedPrecision.Float32 or MixedPrecision.BFloat16, $"precision '{Precision}' is not fp32 or bf16");
        Check(Ema is >= 0 and < 1, $"weight-average decay {Ema} must be in [0, 1) (0 = off)");
        Check(LabelSmoothing is >= 0 and < 1, "label smoothing must be in [0, 1)");
        Check(Beta >= 0 && PLoss >= 1, "beta must be >= 0 and ploss >= 1");
        Check(Preprocess.Interpolation is "area" or "linear" or "cubic" or "nearest", $"interpolation '{Preprocess.Interpolation}' is not area, linear, cubic or nearest");
        Check(Sampling is "shuffle" or "sqrt" or "balanced", $"sampling '{Sampling}' is not shuffle, sqrt or balanced");
        Check(BestBy is "leaf" or "levels", $"best-by '{BestBy}' is not leaf or levels");
        Check(LrSchedule is "epoch" or "step", $"learning-rate schedule '{LrSchedule}' is not epoch or step");
        Check(WeightDecayOn is "all" or "weights", $"weight decay target '{WeightDecayOn}' is not all or weights");
    }

    [JsonIgnore]
    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    [JsonIgnore]
    public int EffectiveLoaderThreads => LoaderThreads > 0 ? LoaderThreads : Math.Max(1, Environment.ProcessorCount / 4);

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException(message);
        }
    }
}
