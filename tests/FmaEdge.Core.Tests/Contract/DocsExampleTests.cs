using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Core.Tests.Contract;

/// <summary>The examples in docs/ are what the code writes and reads, so the documentation cannot drift.</summary>
public sealed partial class DocsExampleTests : IDisposable
{
    private readonly TempFolder _temp = new("core-docs");

    public void Dispose() => _temp.Dispose();

    /// <summary>The fenced block following the HTML comment "&lt;!-- example: NAME --&gt;" in a docs file.</summary>
    internal static string Example(string doc, string name)
    {
        var text = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", doc)).Replace("\r\n", "\n", StringComparison.Ordinal);
        var match = Regex.Match(text, $@"<!-- example: {Regex.Escape(name)} -->\s*```[a-z]*\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, $"docs/{doc} has no example '{name}'");
        return match.Groups[1].Value;
    }

    /// <summary>The manifest docs/model-format.md shows: the real defect tree with the default preprocessing
    /// and uncalibrated decoding, as the trainer writes it before calibration.</summary>
    internal static ModelManifest ExampleManifest()
    {
        var data = DatasetLoader.ScanFolder(TestPaths.DatasetTrain, levelNames: ["DefectLocate", "LocationFlag", "FMA Defect"]);
        var m = ModelManifest.For(data.Tree);
        return m with
        {
            Model = new ModelInfo
            {
                Id = "defects-convnext_atto-128",
                Version = "1.0.0",
                CreatedUtc = "2026-11-26T22:00:00Z",
                Architecture = "convnext_atto",
                Head = "independent",
                Loss = "cross-entropy",
            },
            Input = new InputSpec { Height = 128, Width = 128 },
            Training = new JsonObject
            {
                ["data"] = new JsonObject { ["train_images"] = data.Images.Count, ["leaves"] = data.Tree.Leaves.Count },
            },
        };
    }

    [Fact]
    public void ModelFormatDoc_ExampleManifest_IsExactlyWhatTheCodeSerialises()
    {
        var expected = ExampleManifest().ToJson().Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd();

        var documented = Example("model-format.md", "manifest").TrimEnd();

        if (expected != documented)
        {
            // Written so a changed manifest format can be pasted into the docs after review.
            File.WriteAllText(Path.Combine(Path.GetTempPath(), "fmaedge-example-manifest.json"), expected + "\n");
        }

        Assert.Equal(expected, documented);
    }

    [Fact]
    public void ModelFormatDoc_ExampleManifest_MakesAValidModelFile()
    {
        var manifest = ModelManifest.FromJson(Example("model-format.md", "manifest"));
        var tree = manifest.ParseTree();
        var path = OnnxTestModels.Write(OnnxTestModels.Build(manifest, tree), Path.Combine(_temp.Path, "example.onnx"));

        var report = ModelContract.Validate(path);

        Assert.True(report.IsValid, string.Join("\n", report.Violations));
        Assert.Equal([3, 7, 21], report.Model!.Tree.LevelSizes);
    }

    [Fact]
    public void TaxonomyDoc_JsonAndYamlExamples_LoadToTheSameTree()
    {
        var json = _temp.File("tree.json");
        var yaml = _temp.File("tree.yaml");
        File.WriteAllText(json, Example("taxonomy.md", "tree-json"));
        File.WriteAllText(yaml, Example("taxonomy.md", "tree-yaml"));

        var fromJson = DatasetLoader.LoadTreeFile(json);
        var fromYaml = DatasetLoader.LoadTreeFile(yaml);

        Assert.Equal(TaxonomyLoader.ToJson(fromJson), TaxonomyLoader.ToJson(fromYaml));
        Assert.Equal(["DefectLocate", "LocationFlag", "FMA Defect"], fromJson.Levels.Select(l => l.Name));
        Assert.Equal(Example("taxonomy.md", "labels").Trim().Split('\n').Select(l => l.Trim()), fromJson.Leaves.Select(l => $"{l.Path} -> {l.Label}"));
    }

    [Fact]
    public void TaxonomyDoc_ManifestCsvExample_Loads()
    {
        var tree = DatasetLoader.LoadTreeFile(WriteText("tree.json", Example("taxonomy.md", "tree-json")));
        var csv = WriteText("labels.csv", Example("taxonomy.md", "manifest-csv"));
        var pool = TestPaths.SampleImages("train", 1);
        var i = 0;
        foreach (var line in File.ReadAllLines(csv).Skip(1).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            File.Copy(pool[i++ % pool.Count], _temp.File(line[..line.LastIndexOf(',')]));
        }

        var data = DatasetLoader.LoadManifest(csv, tree);

        Assert.Equal(tree.Leaves.Count, data.CountsPerLeaf().Count(c => c > 0));
    }

    [Fact]
    public void TaxonomyDoc_EveryErrorMessageIsListed()
    {
        // Each message the loader can produce has a fixed part; the doc's table must mention it.
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "taxonomy.md"));
        var sources = new[]
            {
                "src/FmaEdge.Core/Taxonomy/TaxonomyBuilder.cs", "src/FmaEdge.Core/Taxonomy/TaxonomyLoader.cs", "src/FmaEdge.Core/Taxonomy/Taxonomy.cs",
                "tools/FmaEdge.Evaluation/Datasets/DatasetLoader.cs", "tools/FmaEdge.Evaluation/Datasets/LabeledDataset.cs",
            }
            .Select(f => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, f)));
        var fixedParts = sources.SelectMany(s => ErrorMessage().Matches(s).Select(m => LongestLiteral(m.Groups[1].Value)))
            .Where(p => p.Length >= 8).Distinct().ToList();

        Assert.NotEmpty(fixedParts);
        Assert.All(fixedParts, p => Assert.Contains(p, doc));
    }

    [Fact]
    public void ModelFormatDoc_EveryViolationIsListed()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "model-format.md"));
        var source = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "src", "FmaEdge.Core", "Contract", "ModelContract.cs"));
        var fixedParts = ViolationMessage().Matches(source).Select(m => LongestLiteral(m.Groups[1].Value))
            .Where(p => p.Length >= 8).Distinct().ToList();

        Assert.True(fixedParts.Count > 30, $"found only {fixedParts.Count} messages");
        Assert.All(fixedParts, p => Assert.Contains(p, doc));
    }

    private string WriteText(string name, string text)
    {
        var path = _temp.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The longest run of an interpolated string outside {holes}.</summary>
    private static string LongestLiteral(string template) =>
        Regex.Split(template, @"\{[^}]*\}|\{.*$").Select(s => s.Trim()).Where(s => !s.Contains("string.Join", StringComparison.Ordinal))
            .OrderByDescending(s => s.Length).FirstOrDefault() ?? "";

    [GeneratedRegex(@"(?:errors\.Add|Errors\.Add|TaxonomyException\(\[)\(?\$?""((?:[^""\\]|\\.)*)""")]
    private static partial Regex ErrorMessage();

    [GeneratedRegex(@"(?:v\.Add|violations\.Add|Fail|\[|=> \$?""manifest field)\(?\$?""((?:[^""\\]|\\.)*)""")]
    private static partial Regex ViolationMessage();
}
