using FmaEdge.Daemon.Configuration;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Configuration;

public sealed class ConfigurationTests
{
    [Fact]
    public void Bind_ShippedDefaults_AreValidAndDocumentedValues()
    {
        using var tmp = new TempFolder("cfg");
        var o = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none")));
        Assert.Equal(["tensorrt", "cuda", "cpu"], o.Inference.ProviderList);
        Assert.Equal(8, o.Inference.MaxBatch);
        Assert.True(o.Inference.TimeBatches);
        Assert.Equal(0, o.Inference.IntraOpThreads); // one per core the process may use
        Assert.Equal(10, o.Inference.OtherThreadsNice);
        Assert.Equal(OutputType.Mqtt, o.Output.Type);
        Assert.Empty(o.Sources);
    }

    [Fact]
    public void Bind_ManyBadSettings_ListsEveryError()
    {
        using var tmp = new TempFolder("cfg");
        var config = FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"), overrides: new Dictionary<string, string?>
        {
            ["FmaEdge:NodeName"] = "bad name/with slash",
            ["FmaEdge:Inference:Providers"] = "tensorrt,gpu",
            ["FmaEdge:Inference:MaxBatch"] = "0",
            ["FmaEdge:Inference:MaxBatchSize"] = "4",
            ["FmaEdge:Inference:OtherThreadsNice"] = "20",
            ["FmaEdge:Pipeline:InputCapacity"] = "0",
            ["FmaEdge:Output:Type"] = "kafka",
            ["FmaEdge:Logging:Level"] = "Loud",
            ["FmaEdge:Sources:0:Id"] = "a",
            ["FmaEdge:Sources:0:Type"] = "folder",
            ["FmaEdge:Sources:0:Completion"] = "maybe",
            ["FmaEdge:Sources:1:Id"] = "a",
            ["FmaEdge:Sources:1:Type"] = "camera",
            ["FmaEdge:Sources:1:Backend"] = "gstreamer",
            ["FmaEdge:Sources:2:Id"] = "s2",
            ["FmaEdge:Sources:2:Type"] = "scanner",
        });
        var ex = Assert.Throws<ConfigurationErrorsException>(() => FmaEdgeConfiguration.Bind(config));
        string[] expected =
        [
            "FmaEdge:NodeName", "'gpu'", "FmaEdge:Inference:MaxBatch = 0", "FmaEdge:Inference:MaxBatchSize is not a known setting",
            "FmaEdge:Inference:OtherThreadsNice = 20",
            "FmaEdge:Pipeline:InputCapacity", "kafka", "Loud", "FmaEdge:Sources:0:Path is required", "FmaEdge:Sources:0:Completion 'maybe'",
            "FmaEdge:Sources:1:Id 'a' is used by another source", "FmaEdge:Sources:1:Uri is required",
            "FmaEdge:Sources:1:Backend 'gstreamer' is not auto, opencv, ffmpeg", "FmaEdge:Sources:2:Type 'scanner'",
        ];
        foreach (var e in expected)
        {
            Assert.Contains(ex.Errors, x => x.Contains(e, StringComparison.Ordinal));
        }

        Assert.Equal(expected.Length, ex.Errors.Count);
    }

    [Fact]
    public void Bind_ClosedSets_NamesInAnyCaseNumbersRefusedByName()
    {
        using var tmp = new TempFolder("cfg");
        Dictionary<string, string?> Folder(string after, string completion) => new()
        {
            ["FmaEdge:Sources:0:Id"] = "line1",
            ["FmaEdge:Sources:0:Path"] = tmp.File("inbox"),
            ["FmaEdge:Sources:0:After"] = after,
            ["FmaEdge:Sources:0:Completion"] = completion,
            ["FmaEdge:Output:Type"] = "Folder",
        };
        var ok = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: tmp.File("none"), overrides: Folder("LEAVE", "rename")));
        Assert.Equal((FolderAfter.Leave, FolderCompletion.Rename, OutputType.Folder), (ok.Sources[0].After, ok.Sources[0].Completion, ok.Output.Type));

        // The binder alone would take "1" for the second name; a number is not a documented value.
        var ex = Assert.Throws<ConfigurationErrorsException>(() =>
            FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: tmp.File("none"), overrides: Folder("1", "stabel"))));
        Assert.Equal(["FmaEdge:Sources:0:After '1' is not move or leave", "FmaEdge:Sources:0:Completion 'stabel' is not stable or rename"],
            ex.Errors.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Bind_CameraCaptureDeadlines_DocumentedDefaultsAndBoundsChecked()
    {
        using var tmp = new TempFolder("cfg");
        FmaEdgeOptions Bind(params (string Key, string Value)[] camera)
        {
            var overrides = new Dictionary<string, string?>
            {
                ["FmaEdge:Sources:0:Id"] = "cam1",
                ["FmaEdge:Sources:0:Type"] = "camera",
                ["FmaEdge:Sources:0:Uri"] = "/dev/video0",
            };
            foreach (var (k, v) in camera)
            {
                overrides[$"FmaEdge:Sources:0:{k}"] = v;
            }

            return FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"), overrides: overrides));
        }

        var cam = Bind().Sources[0];
        Assert.Equal(20, cam.OpenTimeoutSeconds); // docs/configuration.md, camera sources
        Assert.Equal(20, cam.StallSeconds);
        Assert.Equal(2, cam.MaxStuckCaptures);
        var ex = Assert.Throws<ConfigurationErrorsException>(() => Bind(("OpenTimeoutSeconds", "0"), ("MaxStuckCaptures", "65")));
        Assert.Contains(ex.Errors, e => e.Contains("FmaEdge:Sources:0:OpenTimeoutSeconds = 0", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.Contains("FmaEdge:Sources:0:MaxStuckCaptures = 65", StringComparison.Ordinal));
        Assert.Equal(2, ex.Errors.Count);
    }

    [Fact]
    public void Build_OverrideFilesThenEnvironment_LayerInOrder()
    {
        using var tmp = new TempFolder("cfg");
        var etc = Path.Combine(tmp.Path, "etc");
        Directory.CreateDirectory(etc);
        File.WriteAllText(Path.Combine(etc, "10-site.json"), """{ "FmaEdge": { "Inference": { "MaxBatch": 4 }, "NodeName": "site" } }""");
        File.WriteAllText(Path.Combine(etc, "20-line.json"), """{ "FmaEdge": { "Inference": { "MaxBatch": 6, "Providers": "cpu" } } }""");
        var o = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: etc));
        Assert.Equal(6, o.Inference.MaxBatch);
        Assert.Equal("site", o.NodeName);
        Assert.Equal(["cpu"], o.Inference.ProviderList);

        var single = Path.Combine(tmp.Path, "single.json");
        File.WriteAllText(single, """{ "FmaEdge": { "Inference": { "MaxBatch": 2 } } }""");
        var fromFile = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(configFile: single, systemConfigDir: etc));
        Assert.Equal(2, fromFile.Inference.MaxBatch);
        Assert.Equal("", fromFile.NodeName); // --config replaces the folder, it does not add to it

        Environment.SetEnvironmentVariable("FMAEDGE__Health__DiskFloorMiB", "123");
        try
        {
            Assert.Equal(123, FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: etc)).Health.DiskFloorMiB);
        }
        finally
        {
            Environment.SetEnvironmentVariable("FMAEDGE__Health__DiskFloorMiB", null);
        }
    }
}
