using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace FmaEdge.Training.Training;

/// <summary>One epoch's figures as written to history.json.</summary>
public sealed record EpochRecord
{
    [JsonPropertyName("epoch")] public int Epoch { get; init; }
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
    [JsonPropertyName("lr")] public double Lr { get; init; }
    [JsonPropertyName("train_loss")] public double TrainLoss { get; init; }
    [JsonPropertyName("train_loss_per_level")] public double[] TrainLossPerLevel { get; init; } = [];
    [JsonPropertyName("train_dependence")] public double TrainDependence { get; init; }
    [JsonPropertyName("val_loss")] public double? ValLoss { get; init; }
    [JsonPropertyName("val_top1")] public double[]? ValTop1 { get; init; }
    [JsonPropertyName("images_per_sec")] public double ImagesPerSec { get; init; }
}

/// <summary>The run's learning curve: RUNDIR/history.json = {"epochs":[...]}. Not thread-safe.</summary>
public sealed class TrainingHistory
{
    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    [JsonPropertyName("epochs")] public List<EpochRecord> Epochs { get; init; } = [];

    /// <summary>The machine, thread counts and library versions of the process that wrote the history last
    /// (see RunEnvironment): a seeded run repeats bit for bit only where these match.</summary>
    [JsonPropertyName("environment")] public JsonObject? Environment { get; set; }

    public void Save(string path)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }

    public static TrainingHistory Load(string path) =>
        JsonSerializer.Deserialize<TrainingHistory>(File.ReadAllText(path), Json) ?? new TrainingHistory();
}
