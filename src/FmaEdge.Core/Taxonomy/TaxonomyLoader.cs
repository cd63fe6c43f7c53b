using System.Text.Json;

namespace FmaEdge.Core.Taxonomy;

/// <summary>Reads and writes a tree as its canonical JSON (as embedded in model files). Reading trees and
/// labelled datasets from disk (folders, YAML tree files, CSV manifests) is the trainer's side
/// (FmaEdge.Evaluation's DatasetLoader). Stateless and thread-safe.</summary>
public static class TaxonomyLoader
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Parses tree JSON (comments and trailing commas allowed) without validating it.</summary>
    public static TaxonomyDocument ParseJson(string text, string source = "tree")
    {
        try
        {
            return JsonSerializer.Deserialize<TaxonomyDocument>(text, Json) ?? throw new TaxonomyException([$"{source} is empty"]);
        }
        catch (JsonException e)
        {
            throw new TaxonomyException([$"{source} is not a valid tree file: {e.Message}"]);
        }
    }

    /// <summary>Serialises a tree to its canonical JSON.</summary>
    public static string ToJson(CategoryTree tree) => JsonSerializer.Serialize(tree.ToDocument(), Json);

    /// <summary>Parses canonical tree JSON (as embedded in model files).</summary>
    public static CategoryTree FromJson(string json, bool allowSingleClassLevels = true) =>
        TaxonomyBuilder.Build(ParseJson(json), allowSingleClassLevels);
}
