using System.Globalization;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using YamlDotNet.Serialization;

namespace FmaEdge.Training.Compare;

/// <summary>One row of a comparison grid: backbone, head, loss and seed. <see cref="Loss"/> is ce, dhc, dhc-soft or
/// bcnn (= ce with the B-CNN level-weight schedule). Immutable.</summary>
public sealed record CompareRow(string Model, string Head, string Loss, int Seed)
{
    public const string BCnnLoss = "bcnn";

    /// <summary>The loss names a grid accepts.</summary>
    public static readonly IReadOnlyList<string> Losses = ["ce", "dhc", "dhc-soft", BCnnLoss];

    /// <summary>The configuration without the seed (what seeds are aggregated over).</summary>
    public string Config => $"{Model} · {Head} · {Loss}";

    /// <summary>The row's run folder name inside the grid folder.</summary>
    public string Id => $"{Model}__{Head}__{Loss}__s{Seed.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The trainer's --loss value.</summary>
    public string TrainerLoss => Loss == BCnnLoss ? "ce" : Loss;

    /// <summary>Whether the trainer runs with --bcnn.</summary>
    public bool BCnn => Loss == BCnnLoss;

    /// <summary>Canonical names; throws <see cref="ArgumentException"/> for an unknown backbone, head or loss.</summary>
    public static CompareRow Create(string model, string head, string loss, int seed)
    {
        var l = loss.Trim().ToLowerInvariant();
        if (!Losses.Contains(l))
        {
            throw new ArgumentException($"unknown loss '{loss}'; choose {string.Join(", ", Losses)}");
        }

        if (l != BCnnLoss)
        {
            _ = LossOptions.ParseKind(l);
        }

        return new CompareRow(BackboneRegistry.Canonical(model), HeadKinds.Parse(head).Name(), l, seed);
    }
}

/// <summary>Builds the rows of a comparison: a cross product of lists, or an explicit list from a JSON/YAML file
/// (a list of {model, head, loss, seed} maps; a map without seed means seed 0, a "seeds" list expands).
/// Stateless.</summary>
public static class CompareGrid
{
    public static IReadOnlyList<CompareRow> Cross(IEnumerable<string> models, IEnumerable<string> heads, IEnumerable<string> losses, IEnumerable<int> seeds)
    {
        var rows = (from m in models from h in heads from l in losses from s in seeds select CompareRow.Create(m, h, l, s)).ToList();
        return Distinct(rows);
    }

    /// <summary>Reads a grid file: JSON or YAML, a list of maps with model, head, loss and seed (or seeds).</summary>
    public static IReadOnlyList<CompareRow> Load(string path)
    {
        List<Dictionary<string, object>>? items;
        try
        {
            // JSON is YAML, so one parser reads both.
            items = new DeserializerBuilder().Build().Deserialize<List<Dictionary<string, object>>>(File.ReadAllText(path));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new ArgumentException($"grid file '{path}' is not a JSON/YAML list of rows: {e.Message}");
        }

        if (items is null || items.Count == 0)
        {
            throw new ArgumentException($"grid file '{path}' holds no rows");
        }

        var rows = new List<CompareRow>();
        foreach (var (item, i) in items.Select((x, i) => (x, i)))
        {
            string Get(string key, string? fallback = null) =>
                item.TryGetValue(key, out var v) && v is not null ? Convert.ToString(v, CultureInfo.InvariantCulture)!
                : fallback ?? throw new ArgumentException($"grid row {i + 1} has no '{key}'");
            var seeds = item.TryGetValue("seeds", out var s) && s is List<object> list
                ? list.Select(x => int.Parse(Convert.ToString(x, CultureInfo.InvariantCulture)!, CultureInfo.InvariantCulture)).ToList()
                : [int.Parse(Get("seed", "0"), CultureInfo.InvariantCulture)];
            foreach (var seed in seeds)
            {
                rows.Add(CompareRow.Create(Get("model"), Get("head", "independent"), Get("loss", "ce"), seed));
            }
        }

        return Distinct(rows);
    }

    private static IReadOnlyList<CompareRow> Distinct(List<CompareRow> rows)
    {
        var distinct = rows.Distinct().ToList();
        if (distinct.Count == 0)
        {
            throw new ArgumentException("the grid has no rows");
        }

        return distinct;
    }
}
