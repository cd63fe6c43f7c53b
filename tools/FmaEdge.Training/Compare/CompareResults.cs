using System.Text.Json.Serialization;

namespace FmaEdge.Training.Compare;

/// <summary>One level's numbers of one row: top-1..top-5 of the level's own probabilities (argmax decoding for
/// top-1) and the accuracy of the path-consistent answer at that level. Fractions 0..1. Immutable.</summary>
public sealed record CompareLevel(string Name, double Top1, double Top2, double Top3, double Top4, double Top5, double PathDecoded)
{
    public double[] TopK => [Top1, Top2, Top3, Top4, Top5];
}

/// <summary>The measured outcome of one finished grid row (RUNDIR/row.json). Metrics come from the run's exported,
/// calibrated model evaluated through ONNX Runtime on the validation set (the run's report.json). Immutable.</summary>
public sealed record CompareRowResult
{
    public string Id { get; init; } = "";
    public string Model { get; init; } = "";
    public string Head { get; init; } = "";
    public string Loss { get; init; } = "";
    public int Seed { get; init; }
    public string Config { get; init; } = "";
    public int ValImages { get; init; }
    public IReadOnlyList<CompareLevel> Levels { get; init; } = [];
    public double PathAccuracy { get; init; }
    public double PathAccuracyArgmax { get; init; }
    public double Consistency { get; init; }
    public double MistakeSeverity { get; init; }
    public double HierarchicalF1 { get; init; }

    /// <summary>Share of images whose calibrated coarse answer reaches level l or deeper (l = 1..depth).</summary>
    public IReadOnlyList<double> CoverageByLevel { get; init; } = [];

    /// <summary>Precision of the coarse answers (answer is an ancestor of the truth), on the calibration set itself.</summary>
    public double CoarsePrecision { get; init; }

    public double? TargetPrecision { get; init; }
    public int Epochs { get; init; }

    /// <summary>Sum of the epochs' training-loop seconds (history.json; resumed epochs included once).</summary>
    public double TrainSeconds { get; init; }

    /// <summary>Wall-clock seconds of the row's last trainer process (decode, train, validation, export, calibration).</summary>
    public double WallSeconds { get; init; }

    public double ImagesPerSecond { get; init; }
    public long ModelBytes { get; init; }
    public long Parameters { get; init; }
    public long BackboneParameters { get; init; }

    /// <summary>Peak resident memory (VmHWM) of the row's trainer process, sampled every 100 ms; null when unavailable.</summary>
    public long? PeakRssBytes { get; init; }

    public string FinishedUtc { get; init; } = "";
}

/// <summary>Mean and spread of one metric over a configuration's seeds. Std is the sample standard deviation
/// (0 for one seed). Immutable.</summary>
public sealed record Stat(double Mean, double Std, double Min, double Max, int N)
{
    public static Stat Of(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0)
        {
            return new Stat(double.NaN, double.NaN, double.NaN, double.NaN, 0);
        }

        var mean = v.Average();
        var std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return new Stat(mean, std, v.Min(), v.Max(), v.Length);
    }
}

/// <summary>A configuration (backbone x head x loss) aggregated over its seeds. Immutable.</summary>
public sealed record CompareConfigSummary
{
    public string Config { get; init; } = "";
    public string Model { get; init; } = "";
    public string Head { get; init; } = "";
    public string Loss { get; init; } = "";
    public IReadOnlyList<int> Seeds { get; init; } = [];

    /// <summary>Per level: [top1..top5, path-decoded] statistics.</summary>
    public IReadOnlyList<IReadOnlyList<Stat>> Levels { get; init; } = [];

    public IReadOnlyList<string> LevelNames { get; init; } = [];
    public Stat PathAccuracy { get; init; } = Stat.Of([]);
    public Stat PathAccuracyArgmax { get; init; } = Stat.Of([]);
    public Stat Consistency { get; init; } = Stat.Of([]);
    public Stat MistakeSeverity { get; init; } = Stat.Of([]);
    public Stat HierarchicalF1 { get; init; } = Stat.Of([]);
    public IReadOnlyList<Stat> CoverageByLevel { get; init; } = [];
    public Stat CoarsePrecision { get; init; } = Stat.Of([]);
    public Stat TrainSeconds { get; init; } = Stat.Of([]);
    public Stat ImagesPerSecond { get; init; } = Stat.Of([]);
    public long ModelBytes { get; init; }
    public long Parameters { get; init; }
    public long BackboneParameters { get; init; }
    public Stat PeakRssBytes { get; init; } = Stat.Of([]);

    public static CompareConfigSummary Of(IReadOnlyList<CompareRowResult> rows)
    {
        var first = rows[0];
        var depth = rows.Min(r => r.Levels.Count);
        return new CompareConfigSummary
        {
            Config = first.Config,
            Model = first.Model,
            Head = first.Head,
            Loss = first.Loss,
            Seeds = rows.Select(r => r.Seed).Order().ToList(),
            LevelNames = first.Levels.Take(depth).Select(l => l.Name).ToList(),
            Levels = Enumerable.Range(0, depth).Select(l => (IReadOnlyList<Stat>)Enumerable.Range(0, 6)
                .Select(k => Stat.Of(rows.Select(r => k < 5 ? r.Levels[l].TopK[k] : r.Levels[l].PathDecoded))).ToList()).ToList(),
            PathAccuracy = Stat.Of(rows.Select(r => r.PathAccuracy)),
            PathAccuracyArgmax = Stat.Of(rows.Select(r => r.PathAccuracyArgmax)),
            Consistency = Stat.Of(rows.Select(r => r.Consistency)),
            MistakeSeverity = Stat.Of(rows.Select(r => r.MistakeSeverity)),
            HierarchicalF1 = Stat.Of(rows.Select(r => r.HierarchicalF1)),
            CoverageByLevel = Enumerable.Range(0, rows.Min(r => r.CoverageByLevel.Count)).Select(l => Stat.Of(rows.Select(r => r.CoverageByLevel[l]))).ToList(),
            CoarsePrecision = Stat.Of(rows.Select(r => r.CoarsePrecision)),
            TrainSeconds = Stat.Of(rows.Select(r => r.TrainSeconds)),
            ImagesPerSecond = Stat.Of(rows.Select(r => r.ImagesPerSecond)),
            ModelBytes = first.ModelBytes,
            Parameters = first.Parameters,
            BackboneParameters = first.BackboneParameters,
            PeakRssBytes = Stat.Of(rows.Where(r => r.PeakRssBytes is not null).Select(r => (double)r.PeakRssBytes!.Value)),
        };
    }
}

/// <summary>A row that did not finish (its trainer failed); the grid goes on and a rerun retries it.</summary>
public sealed record CompareFailure(string Id, string Config, int Seed, int ExitCode, string LastOutput);

/// <summary>Everything GRIDDIR/results.json holds. Immutable.</summary>
public sealed record CompareResults
{
    public string Schema { get; init; } = "fmaedge.compare/1";
    public string CreatedUtc { get; init; } = "";

    /// <summary>The shared recipe: the trainer arguments every row used (besides model, head, loss, seed, out).</summary>
    public IReadOnlyList<string> Recipe { get; init; } = [];

    /// <summary>The command that reproduces any row: the recipe plus that row's --model --head --loss [--bcnn] --seed --out.</summary>
    public string RowCommand { get; init; } = "";

    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
    public int RowsPlanned { get; init; }
    public IReadOnlyList<CompareRowResult> Rows { get; init; } = [];
    public IReadOnlyList<CompareConfigSummary> Configs { get; init; } = [];
    public IReadOnlyList<CompareFailure> Failures { get; init; } = [];

    [JsonIgnore]
    public bool Complete => Rows.Count == RowsPlanned && Failures.Count == 0;
}
