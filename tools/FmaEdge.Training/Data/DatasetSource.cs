using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;

namespace FmaEdge.Training.Data;

/// <summary>Where training data comes from (folder tree, or tree file + CSV manifest) and how validation is
/// chosen (a separate folder, or a reproducible stratified fraction). Immutable.</summary>
public sealed record DatasetSource
{
    /// <summary>ROOT/&lt;L1&gt;/.../&lt;leaf&gt;/images, or the folder relative manifest paths resolve against.</summary>
    public string? DataDir { get; init; }

    /// <summary>An explicit tree file (JSON/YAML); with a manifest, or to pin class order for a folder.</summary>
    public string? TreeFile { get; init; }

    /// <summary>CSV manifest path,leaf (needs <see cref="TreeFile"/>).</summary>
    public string? ManifestCsv { get; init; }

    /// <summary>A separate validation folder (same tree).</summary>
    public string? ValDir { get; init; }

    /// <summary>Fraction of each leaf held out for validation when no <see cref="ValDir"/> is given (0 = none).</summary>
    public double ValFraction { get; init; }

    public int Seed { get; init; }

    /// <summary>A separate calibration folder (same tree): temperatures and coarse thresholds are fitted on it.</summary>
    public string? CalibDir { get; init; }

    /// <summary>Fraction of each leaf of the training data set aside for calibration when no <see cref="CalibDir"/>
    /// is given (0 = none: calibration falls back to the validation set). Its split seed is fixed, so
    /// with a separate validation folder runs with different seeds train on the same images.</summary>
    public double CalibFraction { get; init; }

    /// <summary>The seed of the calibration carve-out (fixed, see <see cref="CalibFraction"/>).</summary>
    public const int CalibrationSplitSeed = 0xCA1B;

    /// <summary>Loads the training and validation sets (val may be empty); the training set leaves out the
    /// calibration part. Throws <see cref="TaxonomyException"/> listing every data problem,
    /// <see cref="ArgumentException"/> for inconsistent options.</summary>
    public (LabeledDataset Train, LabeledDataset Val) Load()
    {
        var (train, val, _) = LoadWithCalibration();
        return (train, val);
    }

    /// <summary>Loads training, validation and calibration sets (val and calib may be empty), disjoint.</summary>
    public (LabeledDataset Train, LabeledDataset Val, LabeledDataset Calib) LoadWithCalibration()
    {
        if (CalibDir is not null && CalibFraction > 0)
        {
            throw new ArgumentException("give either a calibration folder or a calibration fraction, not both");
        }

        if (CalibFraction is < 0 or >= 1)
        {
            throw new ArgumentException($"calibration fraction {CalibFraction} is outside [0, 1)");
        }

        var (train, val) = LoadTrainAndVal();
        if (CalibDir is not null)
        {
            return (train, val, DatasetLoader.ScanFolder(CalibDir, train.Tree));
        }

        if (CalibFraction > 0)
        {
            var (rest, calib) = SplitStratified(train, CalibFraction, CalibrationSplitSeed);
            return (rest, val, calib);
        }

        return (train, val, train with { Images = [] });
    }

    private (LabeledDataset Train, LabeledDataset Val) LoadTrainAndVal()
    {
        if (ValDir is not null && ValFraction > 0)
        {
            throw new ArgumentException("give either a validation folder or a validation fraction, not both");
        }

        if (ValFraction is < 0 or >= 1)
        {
            throw new ArgumentException($"validation fraction {ValFraction} is outside [0, 1)");
        }

        CategoryTree? tree = TreeFile is null ? null : DatasetLoader.LoadTreeFile(TreeFile);
        LabeledDataset all;
        if (ManifestCsv is not null)
        {
            all = DatasetLoader.LoadManifest(ManifestCsv, tree ?? throw new ArgumentException("a CSV manifest needs --tree"));
        }
        else if (DataDir is not null)
        {
            all = DatasetLoader.ScanFolder(DataDir, tree);
        }
        else
        {
            throw new ArgumentException("no training data: give --data DIR or --tree FILE with --manifest CSV");
        }

        if (ValDir is not null)
        {
            return (all, DatasetLoader.ScanFolder(ValDir, all.Tree));
        }

        return ValFraction > 0 ? SplitStratified(all, ValFraction, Seed) : (all, all with { Images = [] });
    }

    /// <summary>A stratified split that is the same in every process for the same files and seed: about
    /// <paramref name="fraction"/> of each leaf (at least one where a leaf has two or more) goes to validation.</summary>
    public static (LabeledDataset Train, LabeledDataset Val) SplitStratified(LabeledDataset all, double fraction, int seed)
    {
        var train = new List<LabeledImage>();
        var val = new List<LabeledImage>();
        foreach (var group in all.Images.GroupBy(i => i.Leaf).OrderBy(g => g.Key))
        {
            var rng = DeterministicRandom.Create(seed, group.Key, 0x5eed);
            var items = group.OrderBy(i => i.Path, StringComparer.Ordinal).ToList();
            for (var i = items.Count - 1; i > 0; i--)
            {
                var j = rng.Next(i + 1);
                (items[i], items[j]) = (items[j], items[i]);
            }

            var nVal = items.Count < 2 ? 0 : Math.Max(1, (int)Math.Round(items.Count * fraction));
            val.AddRange(items.Take(nVal));
            train.AddRange(items.Skip(nVal));
        }

        return (all with { Images = train }, all with { Images = val });
    }
}
