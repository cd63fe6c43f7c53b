using System.Text.Json;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FmaEdge.Training.Training;

/// <summary>What a checkpoint's state.json holds besides the weights and optimizer files.</summary>
public sealed record CheckpointState
{
    public int FormatVersion { get; init; } = 1;

    /// <summary>"epoch" (end of an epoch), "best" (best on validation) or "interrupted" (mid-epoch, after Ctrl-C).</summary>
    public string Kind { get; init; } = "epoch";

    /// <summary>Epochs fully completed; training resumes with this (0-based) epoch.</summary>
    public int CompletedEpochs { get; init; }

    public long GlobalStep { get; init; }
    public double? BestMetric { get; init; }
    public int BestEpoch { get; init; }
    public double[]? ValTop1 { get; init; }
    public TrainingOptions Options { get; init; } = new();

    /// <summary>Canonical tree JSON (TaxonomyLoader.ToJson).</summary>
    public string Tree { get; init; } = "";

    public string SavedUtc { get; init; } = "";
}

/// <summary>A checkpoint folder: weights.dat (TorchSharp format; the weight average when the run keeps one, so
/// export and evaluation read one file either way), live-weights.dat (the trained weights behind an average, for
/// resume), optimizer.dat, state.json. Folders are written
/// under a temporary name and renamed into place, so a crash or Ctrl-C never leaves a half-written
/// checkpoint. Stateless; thread-safe for distinct folders.</summary>
public static class Checkpoint
{
    public const string WeightsFile = "weights.dat";
    public const string LiveWeightsFile = "live-weights.dat";
    public const string OptimizerFile = "optimizer.dat";
    public const string StateFile = "state.json";

    /// <param name="live">With a weight average: the trained weights (<paramref name="model"/> is then the average).</param>
    public static void Save(string dir, HierarchicalClassifier model, OptimizerHelper? optimizer, CheckpointState state, HierarchicalClassifier? live = null)
    {
        var full = Path.GetFullPath(dir);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(tmp);
        model.save(Path.Combine(tmp, WeightsFile));
        live?.save(Path.Combine(tmp, LiveWeightsFile));
        optimizer?.save_state_dict(Path.Combine(tmp, OptimizerFile));
        File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state with { SavedUtc = DateTime.UtcNow.ToString("O") }, TrainingHistory.Json));
        var old = full + ".old-" + Guid.NewGuid().ToString("N")[..8];
        if (Directory.Exists(full))
        {
            Directory.Move(full, old);
        }

        Directory.Move(tmp, full);
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>Reads state.json from a checkpoint folder (or the state.json path itself).</summary>
    public static CheckpointState ReadState(string dirOrStateFile)
    {
        var path = StatePath(dirOrStateFile);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no checkpoint at '{dirOrStateFile}' (expected a folder holding {StateFile})", path);
        }

        return JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(path), TrainingHistory.Json)
            ?? throw new InvalidDataException($"'{path}' is empty");
    }

    /// <summary>Rebuilds the model a checkpoint describes and loads its weights (on CPU).</summary>
    public static (HierarchicalClassifier Model, CategoryTree Tree, CheckpointState State) LoadModel(string dirOrStateFile)
    {
        var state = ReadState(dirOrStateFile);
        var tree = TaxonomyLoader.FromJson(state.Tree);
        var model = new HierarchicalClassifier(state.Options.Model, tree);
        model.load(Path.Combine(Folder(dirOrStateFile), WeightsFile));
        return (model, tree, state);
    }

    public static void LoadOptimizer(string dirOrStateFile, OptimizerHelper optimizer)
    {
        var path = Path.Combine(Folder(dirOrStateFile), OptimizerFile);
        if (File.Exists(path))
        {
            optimizer.load_state_dict(path);
        }
    }

    public static string Folder(string dirOrStateFile) =>
        File.Exists(dirOrStateFile) && Path.GetFileName(dirOrStateFile) == StateFile ? Path.GetDirectoryName(Path.GetFullPath(dirOrStateFile))! : dirOrStateFile;

    private static string StatePath(string dirOrStateFile) => Path.Combine(Folder(dirOrStateFile), StateFile);
}
