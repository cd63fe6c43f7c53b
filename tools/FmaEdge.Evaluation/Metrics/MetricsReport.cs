using System.Text.Json.Serialization;

namespace FmaEdge.Evaluation.Metrics;

/// <summary>Every hierarchical metric of one evaluation. Rates are fractions 0..1; counts are image counts.
/// Serialises (snake_case) to the "metrics" part of the eval JSON. Immutable snapshot.</summary>
public sealed record MetricsReport
{
    /// <summary>Images evaluated.</summary>
    public int Images { get; init; }

    /// <summary>Per-level metrics, coarse to fine.</summary>
    public IReadOnlyList<LevelMetrics> Levels { get; init; } = [];

    /// <summary>Share of images whose path-consistent answer is right at every level.</summary>
    public double PathAccuracy { get; init; }

    /// <summary>Share of images whose per-level argmaxes are all right.</summary>
    public double PathAccuracyArgmax { get; init; }

    /// <summary>Share of images whose per-level argmaxes form a valid root-to-leaf path.</summary>
    public double Consistency { get; init; }

    /// <summary>Leaf accuracy of the path-consistent answer.</summary>
    public double LeafAccuracyConsistent { get; init; }

    /// <summary>Leaf accuracy of the leaf level's own argmax.</summary>
    public double LeafAccuracyArgmax { get; init; }

    /// <summary>Mean height of the lowest common ancestor of the path answer's leaf and the true leaf, over
    /// wrong answers only (1..depth); 0 when there is no wrong answer.</summary>
    public double MistakeSeverity { get; init; }

    /// <summary>The same for the leaf level's argmax.</summary>
    public double MistakeSeverityArgmax { get; init; }

    /// <summary>Wrong leaves of the path answer (the denominator of <see cref="MistakeSeverity"/>).</summary>
    public int Mistakes { get; init; }

    /// <summary>Mean LCA height over all images (0 for right answers): the "average hierarchical distance".</summary>
    public double MeanLcaHeight { get; init; }

    /// <summary>Kiritchenko's hierarchical precision of the path answer (ancestor sets, root excluded).</summary>
    public double HierarchicalPrecision { get; init; }

    /// <summary>Kiritchenko's hierarchical recall of the path answer.</summary>
    public double HierarchicalRecall { get; init; }

    /// <summary>Kiritchenko's hierarchical F1 of the path answer.</summary>
    public double HierarchicalF1 { get; init; }

    /// <summary>The calibrated coarse ("climbing") answers.</summary>
    public CoarseMetrics Coarse { get; init; } = new();

    /// <summary>The most frequent (true, predicted) confusions of the path answer over all levels.</summary>
    public IReadOnlyList<ConfusedPair> MostConfused { get; init; } = [];
}

/// <summary>Metrics of one level. Confusion and per-class figures use the path-consistent answer (what the
/// daemon reports as the answer); top-k, NLL and ECE use the level's own probabilities.</summary>
public sealed record LevelMetrics
{
    public int Level { get; init; }
    public string Name { get; init; } = "";

    /// <summary>Number of classes at this level.</summary>
    public int Classes { get; init; }

    /// <summary>Share of images whose true class is the level's argmax (seed-style Top-1).</summary>
    public double Top1 { get; init; }
    public double Top2 { get; init; }
    public double Top3 { get; init; }
    public double Top4 { get; init; }
    public double Top5 { get; init; }

    /// <summary>Accuracy at this level of the path-consistent answer.</summary>
    public double ConsistentAccuracy { get; init; }

    /// <summary>Mean negative log-likelihood of the true class (nats).</summary>
    public double Nll { get; init; }

    /// <summary>Expected calibration error of the top-1 confidence (15 equal-width bins).</summary>
    public double Ece { get; init; }

    /// <summary>Mean top-1 confidence.</summary>
    public double MeanConfidence { get; init; }

    /// <summary>Counts [true class][predicted class] of the path-consistent answer at this level.</summary>
    public int[][] Confusion { get; init; } = [];

    /// <summary>Counts [true class][predicted class] of this level's own argmax.</summary>
    public int[][] ConfusionArgmax { get; init; } = [];

    /// <summary>Per-class precision/recall of the path-consistent answer at this level.</summary>
    public IReadOnlyList<ClassMetrics> PerClass { get; init; } = [];

    /// <summary>The most frequent confusions at this level, most first.</summary>
    public IReadOnlyList<ConfusedPair> MostConfused { get; init; } = [];

    /// <summary>Top-k accuracy by k (index 0 = top-1).</summary>
    [JsonIgnore]
    public IReadOnlyList<double> TopK => [Top1, Top2, Top3, Top4, Top5];
}

/// <summary>Precision and recall of one class. Precision (recall) is 0 when the class was never predicted
/// (never present).</summary>
public sealed record ClassMetrics(int Index, string Label, string Path, int Support, int Predicted, int Correct,
    double Precision, double Recall, double F1);

/// <summary>A confusion: images of <see cref="TrueLabel"/> answered as <see cref="PredictedLabel"/>.
/// <see cref="Share"/> is the count over the true class's support.</summary>
public sealed record ConfusedPair(int Level, string LevelName, int TrueIndex, string TrueLabel, int PredictedIndex,
    string PredictedLabel, int Count, double Share);

/// <summary>Metrics of the coarse answer (the path cut where confidence falls below the thresholds).</summary>
public sealed record CoarseMetrics
{
    /// <summary>[l] = share of images answered at depth &gt;= l+1 (non-increasing in l).</summary>
    public IReadOnlyList<double> CoverageByLevel { get; init; } = [];

    /// <summary>Share of answers (depth &gt;= 1) whose deepest node is the true class's ancestor-or-self at that
    /// level. Vacuously 1 when nothing was answered.</summary>
    public double Precision { get; init; } = 1.0;

    /// <summary>Images with an answer of depth &gt;= 1.</summary>
    public int Answered { get; init; }

    /// <summary>[d] = images answered at exactly depth d (0..depth).</summary>
    public IReadOnlyList<int> AnswersByDepth { get; init; } = [];

    /// <summary>[d] = precision of answers at exactly depth d+1, or null when none.</summary>
    public IReadOnlyList<double?> PrecisionByDepth { get; init; } = [];

    /// <summary>Mean answered depth (0..depth).</summary>
    public double MeanDepth { get; init; }

    /// <summary>Hierarchical F1 of the coarse answers (short answers lose recall, not precision).</summary>
    public double HierarchicalF1 { get; init; }

    /// <summary>The thresholds the answers were made with.</summary>
    public IReadOnlyList<double> Thresholds { get; init; } = [];
}
