using System.Security.Cryptography;
using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.TestSupport;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Core.Tests.Contract;

/// <summary>Good and broken model files against the contract; every violation is named, several at once.</summary>
public sealed class ModelContractTests : IDisposable
{
    private readonly TempFolder _temp = new("core-contract");
    private readonly CategoryTree _tree = OnnxTestModels.SmallTree();

    public void Dispose() => _temp.Dispose();

    private ModelManifest GoodManifest() => OnnxTestModels.Manifest(_tree, 16, 16);

    private ModelProto GoodModel() => OnnxTestModels.Build(GoodManifest(), _tree);

    private string Write(ModelProto model, string name = "model.onnx") => OnnxTestModels.Write(model, Path.Combine(_temp.Path, name));

    private ContractReport Validate(ModelProto model) => ModelContract.Validate(Write(model));

    /// <summary>The good graph with a changed manifest written into it.</summary>
    private ContractReport ValidateManifest(Func<ModelManifest, ModelManifest> change)
    {
        var model = GoodModel();
        ModelContract.WriteManifest(model, change(GoodManifest()));
        return Validate(model);
    }

    private static void SetMeta(ModelProto model, string key, string value) =>
        model.MetadataProps.Single(p => p.Key == key).Value = value;

    private static void AssertViolations(ContractReport report, params string[] expected)
    {
        Assert.False(report.IsValid);
        Assert.Null(report.Model);
        Assert.Equal(expected, report.Violations);
    }

    [Fact]
    public void Validate_GoodFile_IsValidWithIdentity()
    {
        var path = Write(GoodModel());

        var report = ModelContract.Validate(path);

        Assert.True(report.IsValid, string.Join("\n", report.Violations));
        Assert.Empty(report.Violations);
        var m = report.Model!;
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), m.Sha256);
        Assert.Equal(m.Sha256[..12], m.ShortHash);
        Assert.Equal(bytes.LongLength, m.Bytes);
        Assert.Equal(17, m.Opset);
        Assert.Equal(path, m.Path);
        Assert.Equal(TaxonomyLoader.ToJson(_tree), TaxonomyLoader.ToJson(m.Tree));
        Assert.Equal(GoodManifest().ToJson(), m.Manifest.ToJson());
    }

    [Fact]
    public void Load_GoodFile_ReturnsTheModel_BrokenFileThrowsWithEveryViolation()
    {
        var good = Write(GoodModel(), "good.onnx");
        var badModel = GoodModel();
        badModel.OpsetImport[0].Version = 12;
        SetMeta(badModel, ModelManifest.FormatVersionKey, "9");
        var bad = Write(badModel, "bad.onnx");

        var model = ModelContract.Load(good);
        var e = Assert.Throws<InvalidModelException>(() => ModelContract.Load(bad));

        Assert.Equal([2, 5], model.Tree.LevelSizes);
        Assert.Equal(2, e.Report.Violations.Count);
        Assert.Equal(bad, e.Report.Path);
        Assert.Contains("opset 12 is below the minimum 17", e.Message);
        Assert.Contains("format version '9' is not supported (this build reads 1)", e.Message);
    }

    [Fact]
    public void Validate_GarbageBytes_IsNotAnOnnxModel()
    {
        var text = Path.Combine(_temp.Path, "text.onnx");
        File.WriteAllText(text, "this is not a model, just some text\n");
        var png = TestPaths.SampleImages("val", 1)[0];

        var r1 = ModelContract.Validate(text);
        var r2 = ModelContract.Validate(png);

        Assert.StartsWith("not an ONNX model (", Assert.Single(r1.Violations));
        Assert.StartsWith("not an ONNX model (", Assert.Single(r2.Violations));
        Assert.False(r1.IsValid || r2.IsValid);
    }

    [Fact]
    public void Validate_EmptyFile_IsReported()
    {
        var path = Path.Combine(_temp.Path, "empty.onnx");
        File.WriteAllBytes(path, []);

        AssertViolations(ModelContract.Validate(path), "file is empty");
    }

    [Fact]
    public void Validate_MissingFile_IsReported()
    {
        var path = Path.Combine(_temp.Path, "missing.onnx");

        AssertViolations(ModelContract.Validate(path), $"file not found: {path}");
    }

    [Fact]
    public void Validate_DirectoryInsteadOfFile_IsNotValid()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_temp.Path, "dir.onnx")).FullName;

        var report = ModelContract.Validate(dir);

        Assert.False(report.IsValid);
        Assert.Single(report.Violations);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void Validate_TruncatedFile_IsNotAnOnnxModel(double keep)
    {
        var bytes = GoodModel().ToByteArray();
        var path = Path.Combine(_temp.Path, "cut.onnx");
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);

        var report = ModelContract.Validate(path);

        Assert.False(report.IsValid);
        Assert.StartsWith("not an ONNX model (protobuf parse failed: ", Assert.Single(report.Violations));
    }

    [Fact]
    public void Validate_TruncatedBeforeTheMetadata_ReportsTheMissingMetadata()
    {
        // Cut exactly where the metadata entries start: the rest still parses, so the contract must notice.
        var model = GoodModel();
        var withoutMeta = model.Clone();
        withoutMeta.MetadataProps.Clear();
        var bytes = model.ToByteArray();
        var prefix = withoutMeta.ToByteArray();
        Assert.Equal(prefix, bytes[..prefix.Length]);
        var path = Path.Combine(_temp.Path, "cut.onnx");
        File.WriteAllBytes(path, prefix);

        AssertViolations(ModelContract.Validate(path),
            "metadata 'fmaedge.format_version' is missing (not an FmaEdge model?)",
            "metadata 'fmaedge.manifest' is missing");
    }

    [Fact]
    public void Validate_NoGraph_IsNotAnOnnxModel()
    {
        var model = GoodModel();
        model.Graph = null;

        AssertViolations(Validate(model), "not an ONNX model (no graph)");
    }

    [Fact]
    public void Validate_NoMetadata_ReportsBothKeysAndStillChecksTheGraph()
    {
        var model = GoodModel();
        model.MetadataProps.Clear();
        model.Graph.Input[0] = OnnxTestModels.Tensor("image", OnnxTestModels.Float, 1, 3, 16, 16);

        AssertViolations(Validate(model),
            "metadata 'fmaedge.format_version' is missing (not an FmaEdge model?)",
            "metadata 'fmaedge.manifest' is missing",
            "input batch dimension is fixed at 1; it must be dynamic");
    }

    [Fact]
    public void Validate_BadFormatVersion_IsReported()
    {
        var model = GoodModel();
        SetMeta(model, ModelManifest.FormatVersionKey, "2");

        AssertViolations(Validate(model), "format version '2' is not supported (this build reads 1)");
    }

    [Fact]
    public void Validate_ManifestFormatVersionDisagreesWithTheKey_IsReported()
    {
        var report = ValidateManifest(m => m);
        var model = GoodModel();
        SetMeta(model, ModelManifest.MetadataKey, GoodManifest().ToJson().Replace("\"format_version\": 1", "\"format_version\": 2", StringComparison.Ordinal));

        Assert.True(report.IsValid);
        AssertViolations(Validate(model), "manifest format_version 2 is not supported (this build reads 1)");
    }

    [Fact]
    public void Validate_DuplicatedMetadataKey_IsReported()
    {
        var model = GoodModel();
        model.MetadataProps.Add(new StringStringEntryProto { Key = ModelManifest.FormatVersionKey, Value = "1" });

        AssertViolations(Validate(model), "metadata 'fmaedge.format_version' appears 2 times");
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("[1, 2, 3]")]
    [InlineData("null")]
    [InlineData("{ \"input\": { \"height\": \"tall\" } }")]
    public void Validate_MalformedManifestJson_IsReportedAndTheGraphStillChecked(string json)
    {
        var model = GoodModel();
        SetMeta(model, ModelManifest.MetadataKey, json);
        model.Graph.Input[0] = OnnxTestModels.Tensor("image", OnnxTestModels.Float, null, 3, 16);

        var report = Validate(model);

        Assert.False(report.IsValid);
        Assert.Equal(2, report.Violations.Count);
        Assert.StartsWith("metadata 'fmaedge.manifest' is not valid manifest JSON: ", report.Violations[0]);
        Assert.Equal("input 'image' must be rank 4 [N,3,H,W], got [N,3,16]", report.Violations[1]);
    }

    [Fact]
    public void Validate_NullFieldsInManifest_AreReportedNotCrashes()
    {
        var model = GoodModel();
        var json = JsonNode.Parse(GoodManifest().ToJson())!.AsObject();
        json["decoding"]!["thresholds"] = null;
        json["preprocess"]!["mean"] = null;
        json["model"] = null;
        json["outputs"]!.AsArray()[1] = null;
        SetMeta(model, ModelManifest.MetadataKey, json.ToJsonString());

        AssertViolations(Validate(model),
            "manifest field 'model' is null",
            "manifest field 'outputs[1]' is null",
            "manifest field 'preprocess.mean' is null",
            "manifest field 'decoding.thresholds' is null");
    }

    [Fact]
    public void Validate_BrokenTreeInManifest_ListsEveryTaxonomyError()
    {
        var model = GoodModel();
        var json = JsonNode.Parse(GoodManifest().ToJson())!.AsObject();
        var leaves = json["taxonomy"]!["levels"]![1]!["classes"]!.AsArray();
        leaves[0]!["parent"] = "wood";
        leaves[1]!["name"] = "bubble";
        leaves[1]!["parent"] = "paint";
        SetMeta(model, ModelManifest.MetadataKey, json.ToJsonString());

        var report = Validate(model);

        Assert.False(report.IsValid);
        Assert.Equal(
        [
            "taxonomy: level 'Defect': class 'scratch' has unknown parent 'wood'",
            "taxonomy: level 'Defect': class 'paint/bubble' is defined twice",
            "taxonomy: class 'metal' has no children at level 'Defect' (every branch must reach the last level)",
        ], report.Violations);
    }

    [Fact]
    public void Validate_NoTaxonomyOrNotATree_IsReported()
    {
        var r1 = ValidateManifest(m => m with { Taxonomy = null });
        var r2 = ValidateManifest(m => m with { Taxonomy = JsonValue.Create("a/b/c") });
        var r3 = ValidateManifest(m => m with { Taxonomy = new JsonObject { ["levels"] = new JsonArray() } });

        AssertViolations(r1, "taxonomy: the manifest has no taxonomy");
        Assert.StartsWith("taxonomy: ", Assert.Single(r2.Violations));
        AssertViolations(r3, "taxonomy: the tree has no levels");
    }

    [Fact]
    public void Validate_OneClassLevelInAModelFile_IsAllowed()
    {
        // The trainer refuses single-class levels, but a model file may carry one (e.g. a product line's root).
        var tree = TaxonomyBuilder.Build(new TaxonomyDocument
        {
            Levels =
            [
                new() { Name = "Line", Classes = [new() { Name = "all" }] },
                new() { Name = "Defect", Classes = [new() { Name = "a", Parent = "all" }, new() { Name = "b", Parent = "all" }] },
            ],
        }, allowSingleClassLevels: true);

        var report = ModelContract.Validate(Write(OnnxTestModels.Build(OnnxTestModels.Manifest(tree), tree)));

        Assert.True(report.IsValid, string.Join("\n", report.Violations));
    }

    public static TheoryData<string, string[]> ManifestCases => new()
    {
        { "thresholds-out-of-range", ["decoding.thresholds[0] = -0.1 is not a number >= 0 (0..1, or above 1 to never answer at that level)", "decoding.thresholds[1] = -1.5 is not a number >= 0 (0..1, or above 1 to never answer at that level)"] },
        { "bad-temperatures", ["decoding.temperatures[0] = 0 must be a positive number", "decoding.temperatures[1] = -1 must be a positive number"] },
        { "list-lengths", ["decoding.thresholds has 3 values for 2 levels", "decoding.temperatures has 1 values for 2 levels"] },
        { "resize", ["preprocess.resize 'squash' is not one of stretch, letterbox, center-crop"] },
        { "interpolation", ["preprocess.interpolation 'lanczos' is not one of area, linear, cubic, nearest"] },
        { "channel-order", ["preprocess.channel_order 'RGBA' is not RGB or BGR"] },
        { "mean-std-count", ["preprocess.mean and preprocess.std need 3 values each"] },
        { "std-not-positive", ["preprocess.std values must be positive"] },
        { "scale", ["preprocess.scale must be positive"] },
        { "grayscale", ["preprocess.grayscale 'drop' is not supported (only replicate)"] },
        { "pad-value", ["preprocess.pad_value 300 is outside 0..255"] },
        { "layout", ["input.layout 'NHWC' is not NCHW"] },
        { "model-id", ["model.id is empty"] },
        { "path-scoring", ["decoding.path_scoring 'sum' is not product or leaf"] },
        { "top-k", ["decoding.top_k 0 is outside 1..100"] },
        { "target-precision", ["decoding.target_precision 1.5 is outside (0, 1]"] },
        { "confidence", ["decoding.confidence 1 is outside (0, 1)"] },
        { "output-kind", ["outputs mix logits and probabilities; all levels must have the same kind", "outputs[1].kind 'softmax' is not logits or probabilities"] },
        { "output-kinds-mixed", ["outputs mix logits and probabilities; all levels must have the same kind"] },
        { "output-order", ["outputs[0] is for level 1; outputs must be listed coarse to fine", "outputs[1] is for level 0; outputs must be listed coarse to fine"] },
        { "output-count", ["manifest lists 1 outputs for 2 levels"] },
        { "output-duplicate-name", ["output name 'level0_logits' is listed for 2 levels", "output 'level0_logits' has 2 classes but level 'Defect' has 5"] },
        { "output-unnamed", ["outputs for level 1 has no name"] },
        { "output-not-in-graph", ["output 'scores' (level 1) is not a graph output; graph outputs are: level0_logits, level1_logits"] },
        { "input-name", ["graph input is named 'image' but the manifest says 'pixels'"] },
        { "input-size", ["input shape [N,3,16,16] does not match the manifest size 32x48 (height x width)"] },
        { "input-size-out-of-range", ["input size 4x4 (height x width) is outside 8..4096", "input shape [N,3,16,16] does not match the manifest size 4x4 (height x width)"] },
        { "input-channels", ["preprocess.mean and preprocess.std need 1 values each", "input.channels is 1; the contract takes 3 (RGB)"] },
        {
            "several-at-once",
            [
                "preprocess.resize 'squash' is not one of stretch, letterbox, center-crop",
                "decoding.thresholds[1] = -2 is not a number >= 0 (0..1, or above 1 to never answer at that level)",
                "decoding.temperatures[0] = 0 must be a positive number",
                "decoding.temperatures has 1 values for 2 levels",
            ]
        },
    };

    private static ModelManifest Change(string name, ModelManifest m) => name switch
    {
        "thresholds-out-of-range" => m with { Decoding = m.Decoding with { Thresholds = [-0.1, -1.5] } },
        "bad-temperatures" => m with { Decoding = m.Decoding with { Temperatures = [0, -1] } },
        "list-lengths" => m with { Decoding = m.Decoding with { Thresholds = [0.1, 0.2, 0.3], Temperatures = [1] } },
        "resize" => m with { Preprocess = m.Preprocess with { Resize = "squash" } },
        "interpolation" => m with { Preprocess = m.Preprocess with { Interpolation = "lanczos" } },
        "channel-order" => m with { Preprocess = m.Preprocess with { ChannelOrder = "RGBA" } },
        "mean-std-count" => m with { Preprocess = m.Preprocess with { Mean = [0.5] } },
        "std-not-positive" => m with { Preprocess = m.Preprocess with { Std = [0.2, 0, 0.2] } },
        "scale" => m with { Preprocess = m.Preprocess with { Scale = 0 } },
        "grayscale" => m with { Preprocess = m.Preprocess with { Grayscale = "drop" } },
        "pad-value" => m with { Preprocess = m.Preprocess with { PadValue = 300 } },
        "layout" => m with { Input = m.Input with { Layout = "NHWC" } },
        "model-id" => m with { Model = m.Model with { Id = " " } },
        "path-scoring" => m with { Decoding = m.Decoding with { PathScoring = "sum" } },
        "top-k" => m with { Decoding = m.Decoding with { TopK = 0 } },
        "target-precision" => m with { Decoding = m.Decoding with { TargetPrecision = 1.5 } },
        "confidence" => m with { Decoding = m.Decoding with { Confidence = 1.0 } },
        "output-kind" => m with { Outputs = [m.Outputs[0], m.Outputs[1] with { Kind = "softmax" }] },
        "output-kinds-mixed" => m with { Outputs = [m.Outputs[0], m.Outputs[1] with { Kind = OutputKinds.Probabilities }] },
        "output-order" => m with { Outputs = [m.Outputs[1], m.Outputs[0]] },
        "output-count" => m with { Outputs = [m.Outputs[0]] },
        "output-duplicate-name" => m with { Outputs = [m.Outputs[0], m.Outputs[1] with { Name = m.Outputs[0].Name }] },
        "output-unnamed" => m with { Outputs = [m.Outputs[0], m.Outputs[1] with { Name = "" }] },
        "output-not-in-graph" => m with { Outputs = [m.Outputs[0], m.Outputs[1] with { Name = "scores" }] },
        "input-name" => m with { Input = m.Input with { Name = "pixels" } },
        "input-size" => m with { Input = m.Input with { Height = 32, Width = 48 } },
        "input-size-out-of-range" => m with { Input = m.Input with { Height = 4, Width = 4 } },
        "input-channels" => m with { Input = m.Input with { Channels = 1 } },
        "several-at-once" => m with
        {
            Preprocess = m.Preprocess with { Resize = "squash" },
            Decoding = m.Decoding with { Thresholds = [0.5, -2], Temperatures = [0] },
        },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(ManifestCases))]
    public void Validate_ManifestViolation_IsReported(string name, string[] expected)
    {
        var report = ValidateManifest(m => Change(name, m));

        AssertViolations(report, expected);
    }

    public static TheoryData<string, string[]> GraphCases => new()
    {
        { "input-rank", ["input 'image' must be rank 4 [N,3,H,W], got [N,3,16]"] },
        { "input-no-shape", ["input 'image' must be rank 4 [N,3,H,W], got no shape"] },
        { "input-channels", ["input has [N,1,16,16]; channel dimension must be 3"] },
        { "input-dynamic-channels", ["input has [N,N,16,16]; channel dimension must be 3"] },
        { "input-fixed-batch", ["input batch dimension is fixed at 4; it must be dynamic"] },
        { "input-size", ["input shape [N,3,16,20] does not match the manifest size 16x16 (height x width)"] },
        { "input-not-float", ["input 'image' is not float32"] },
        { "two-inputs", ["the graph has 2 inputs; the contract takes exactly one image tensor"] },
        { "no-input", ["the graph has 0 inputs; the contract takes exactly one image tensor"] },
        { "output-classes", ["output 'level1_logits' has 4 classes but level 'Defect' has 5"] },
        { "output-rank", ["output 'level0_logits' must be rank 2 [N, classes], got [N,2,1]"] },
        { "output-not-float", ["output 'level1_logits' is not float32"] },
        { "output-missing", ["output 'level1_logits' (level 1) is not a graph output; graph outputs are: level0_logits"] },
        { "opset-too-low", ["opset 13 is below the minimum 17"] },
        { "no-opset", ["opset 0 is below the minimum 17"] },
        {
            "several-at-once",
            [
                "opset 16 is below the minimum 17",
                "input 'image' is not float32",
                "input batch dimension is fixed at 1; it must be dynamic",
                "input has [1,1,16,16]; channel dimension must be 3",
                "output 'level1_logits' has 4 classes but level 'Defect' has 5",
            ]
        },
    };

    private static void Break(string name, ModelProto model)
    {
        var g = model.Graph;
        const int F = OnnxTestModels.Float;
        const int U8 = (int)TensorProto.Types.DataType.Uint8;
        switch (name)
        {
            case "input-rank": g.Input[0] = OnnxTestModels.Tensor("image", F, null, 3, 16); break;
            case "input-no-shape": g.Input[0].Type.TensorType.Shape = null; break;
            case "input-channels": g.Input[0] = OnnxTestModels.Tensor("image", F, null, 1, 16, 16); break;
            case "input-dynamic-channels": g.Input[0] = OnnxTestModels.Tensor("image", F, null, null, 16, 16); break;
            case "input-fixed-batch": g.Input[0] = OnnxTestModels.Tensor("image", F, 4, 3, 16, 16); break;
            case "input-size": g.Input[0] = OnnxTestModels.Tensor("image", F, null, 3, 16, 20); break;
            case "input-not-float": g.Input[0] = OnnxTestModels.Tensor("image", U8, null, 3, 16, 16); break;
            case "two-inputs": g.Input.Add(OnnxTestModels.Tensor("mask", F, null, 1, 16, 16)); break;
            case "no-input": g.Input.Clear(); break;
            case "output-classes": g.Output[1] = OnnxTestModels.Tensor("level1_logits", F, null, 4); break;
            case "output-rank": g.Output[0] = OnnxTestModels.Tensor("level0_logits", F, null, 2, 1); break;
            case "output-not-float": g.Output[1] = OnnxTestModels.Tensor("level1_logits", (int)TensorProto.Types.DataType.Double, null, 5); break;
            case "output-missing": g.Output.RemoveAt(1); break;
            case "opset-too-low": model.OpsetImport[0].Version = 13; break;
            case "no-opset": model.OpsetImport.Clear(); break;
            case "several-at-once":
                model.OpsetImport[0].Version = 16;
                g.Input[0] = OnnxTestModels.Tensor("image", U8, 1, 1, 16, 16);
                g.Output[1] = OnnxTestModels.Tensor("level1_logits", F, null, 4);
                break;
            default: throw new ArgumentException(name);
        }
    }

    [Theory]
    [MemberData(nameof(GraphCases))]
    public void Validate_GraphViolation_IsReported(string name, string[] expected)
    {
        var model = GoodModel();
        Break(name, model);

        AssertViolations(Validate(model), expected);
    }

    [Fact]
    public void Validate_InitializersListedAsInputs_AreNotImageInputs()
    {
        // Older exporters list weights among the graph inputs; only the non-initializer input is the image.
        var model = GoodModel();
        foreach (var init in model.Graph.Initializer)
        {
            model.Graph.Input.Add(OnnxTestModels.Tensor(init.Name, OnnxTestModels.Float, [.. init.Dims.Select(d => (long?)d)]));
        }

        var report = Validate(model);

        Assert.True(report.IsValid, string.Join("\n", report.Violations));
    }

    [Fact]
    public void Validate_ManifestAndGraphProblems_AreReportedTogether()
    {
        var model = GoodModel();
        model.OpsetImport[0].Version = 11;
        model.Graph.Input[0] = OnnxTestModels.Tensor("image", OnnxTestModels.Float, 8, 3, 16, 16);
        ModelContract.WriteManifest(model, GoodManifest() with
        {
            Decoding = GoodManifest().Decoding with { Thresholds = [-1.2, 0.5], Temperatures = [1, 0] },
            Preprocess = GoodManifest().Preprocess with { Resize = "fit" },
        });

        var report = Validate(model);

        Assert.Equal(
        [
            "opset 11 is below the minimum 17",
            "preprocess.resize 'fit' is not one of stretch, letterbox, center-crop",
            "decoding.thresholds[0] = -1.2 is not a number >= 0 (0..1, or above 1 to never answer at that level)",
            "decoding.temperatures[1] = 0 must be a positive number",
            "input batch dimension is fixed at 8; it must be dynamic",
        ], report.Violations);
    }

    [Fact]
    public void Validate_BytesOverload_NamesThePathOnlyInMessages()
    {
        var bytes = GoodModel().ToByteArray();

        var report = ModelContract.Validate(bytes, "memory://model");

        Assert.True(report.IsValid);
        Assert.Equal("memory://model", report.Model!.Path);
        Assert.Equal(bytes.LongLength, report.Model.Bytes);
    }

    [Fact]
    public void WriteManifest_Twice_ReplacesTheEntriesAndRoundTrips()
    {
        var model = GoodModel();
        var changed = GoodManifest() with
        {
            Model = GoodManifest().Model with { Id = "second", Version = "2.0.0" },
            Decoding = GoodManifest().Decoding with { Thresholds = [0.7, 0.45], Temperatures = [1.3, 0.8], TargetPrecision = 0.95, Confidence = 0.9, TopK = 3 },
            Training = new JsonObject { ["data"] = new JsonObject { ["train_images"] = 4146 }, ["epochs"] = 30 },
        };

        ModelContract.WriteManifest(model, changed);
        var path = Write(model);
        var reread = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var report = ModelContract.Validate(path);

        Assert.Equal(2, reread.MetadataProps.Count);
        Assert.Equal("1", reread.MetadataProps.Single(p => p.Key == ModelManifest.FormatVersionKey).Value);
        Assert.True(report.IsValid, string.Join("\n", report.Violations));
        var m = report.Model!.Manifest;
        Assert.Equal(changed.ToJson(), m.ToJson());
        Assert.Equal("second", m.Model.Id);
        Assert.Equal([0.7, 0.45], m.Decoding.Thresholds);
        Assert.Equal([1.3, 0.8], m.Decoding.Temperatures);
        Assert.Equal(0.95, m.Decoding.TargetPrecision);
        Assert.Equal(0.9, m.Decoding.Confidence);
        Assert.Equal(4146, m.Training!["data"]!["train_images"]!.GetValue<int>());
    }

    [Fact]
    public void WriteManifest_KeepsOtherMetadata()
    {
        var model = GoodModel();
        model.MetadataProps.Add(new StringStringEntryProto { Key = "author", Value = "line 3" });

        ModelContract.WriteManifest(model, GoodManifest());

        Assert.Equal(3, model.MetadataProps.Count);
        Assert.Equal("line 3", model.MetadataProps.Single(p => p.Key == "author").Value);
        Assert.True(Validate(model).IsValid);
    }

    [Fact]
    public void FromJson_ManifestJson_RoundTripsAndUsesSnakeCase()
    {
        var m = GoodManifest() with { Decoding = GoodManifest().Decoding with { TargetPrecision = 0.9 } };

        var json = m.ToJson();
        var back = ModelManifest.FromJson(json);

        Assert.Equal(json, back.ToJson());
        Assert.Contains("\"format_version\": 1", json);
        Assert.Contains("\"path_scoring\": \"product\"", json);
        Assert.Contains("\"target_precision\": 0.9", json);
        Assert.Contains("\"channel_order\": \"RGB\"", json);
        Assert.DoesNotContain("\"training\"", json);
        Assert.Throws<System.Text.Json.JsonException>(() => ModelManifest.FromJson("null"));
    }
}
