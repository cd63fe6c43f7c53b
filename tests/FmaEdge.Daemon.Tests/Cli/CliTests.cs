using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Cli;

public sealed class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = FmaEdgeCli.Run(args, CliConsole.ToWriter(o, e));
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void Classify_RealImagesJson_OneResultPerImageWithEveryLevel()
    {
        var images = TestPaths.SampleImages("val", perLeaf: 1).Take(3).ToList();
        var (code, output, err) = Run(["classify", .. images, "--model", TestModels.Real, "--json"]);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(output);
        var results = doc.RootElement.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(images, results.Select(r => r.GetProperty("path").GetString()));
        foreach (var r in results)
        {
            Assert.Equal("published", r.GetProperty("status").GetString());
            var p = r.GetProperty("result").GetProperty("prediction");
            Assert.Equal(3, p.GetProperty("levels").GetArrayLength());
            Assert.Equal(3, p.GetProperty("path").GetArrayLength());
            Assert.InRange(p.GetProperty("coarse").GetProperty("depth").GetInt32(), 0, 3);
        }

        Assert.Equal("cpu", doc.RootElement.GetProperty("model").GetProperty("provider").GetString());
    }

    [Fact]
    public void Classify_TableWithBadImage_ShowsReasonAndExit1()
    {
        using var tmp = new TempFolder("cli");
        var empty = tmp.File("empty.png");
        File.WriteAllBytes(empty, []);
        var good = TestPaths.SampleImages("val", perLeaf: 1)[0];
        var (code, output, _) = Run("classify", good, empty, "--model", TestModels.Real);
        Assert.Equal(1, code);
        Assert.Contains(Path.GetFileName(good), output, StringComparison.Ordinal);
        Assert.Contains("empty", output, StringComparison.Ordinal);
        Assert.Contains("failed", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelValidate_GarbageAndValid_ListsViolationsAndExitCode()
    {
        using var tmp = new TempFolder("validate");
        var garbage = tmp.File("garbage.onnx");
        File.WriteAllBytes(garbage, "definitely not protobuf"u8.ToArray());
        var (bad, badOut, _) = Run("model", "validate", TestModels.Real, garbage);
        Assert.Equal(1, bad);
        Assert.Contains("INVALID", badOut, StringComparison.Ordinal);
        Assert.Contains("not an ONNX model", badOut, StringComparison.Ordinal);
        Assert.Contains("valid", badOut, StringComparison.Ordinal);

        var (good, goodOut, _) = Run("model", "validate", TestModels.Real);
        Assert.Equal(0, good);
        Assert.Contains("levels", goodOut, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_InvalidConfigFile_Exit78ListingEveryError()
    {
        using var tmp = new TempFolder("badcfg");
        var cfg = tmp.File("bad.json");
        File.WriteAllText(cfg, """
            { "FmaEdge": { "Inference": { "MaxBatch": 0, "Providers": "cpu,npu" }, "Output": { "Type": "kafka" },
              "Sources": [ { "Id": "x", "Type": "folder" } ] } }
            """);
        var (code, _, err) = Run("run", "--config", cfg);
        Assert.Equal(FmaEdgeHost.ExitConfigError, code);
        Assert.Contains("MaxBatch", err, StringComparison.Ordinal);
        Assert.Contains("'npu'", err, StringComparison.Ordinal);
        Assert.Contains("kafka", err, StringComparison.Ordinal);
        Assert.Contains("Sources:0:Path", err, StringComparison.Ordinal);
    }
}
