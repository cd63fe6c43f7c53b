using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Status;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Google.Protobuf;
using Onnx;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>One bad model file: its name, its bytes, the stage that must refuse it (<c>validate</c>: the contract check;
/// <c>load</c>: ONNX Runtime or the warm-up) and a phrase the reasons must contain.</summary>
public sealed record BadModelCase(string Kind, string Name, string Stage, string ReasonContains);

/// <summary>One real daemon serving the trained model, with each bad model file dropped into its models folder in turn;
/// what status said right after each refusal is kept for the per-case checks.</summary>
public sealed class BadModelDropFixture : IAsyncLifetime
{
    public static readonly IReadOnlyList<BadModelCase> Cases =
    [
        new("garbage-bytes", "garbage.onnx", "validate", "not an ONNX model"),
        new("empty-file", "empty.onnx", "validate", "file is empty"),
        new("truncated-onnx", "truncated.onnx", "validate", "not an ONNX model"),
        new("missing-metadata", "no-metadata.onnx", "validate", "fmaedge.format_version' is missing"),
        new("broken-tree", "broken-tree.onnx", "validate", "taxonomy:"),
        new("thresholds-out-of-range", "bad-thresholds.onnx", "validate", "thresholds[1] = -0.5 is not a number >= 0"),
        new("declared-output-shape-wrong", "wrong-classes.onnx", "validate", "has 5 classes but level"),
        new("declared-input-size-wrong", "wrong-input.onnx", "validate", "does not match the manifest size"),
        new("graph-computes-other-shape", "lying-shape.onnx", "load", "expected"),
        new("unknown-operator", "unknown-op.onnx", "load", "NoSuchOperator"),
        new("nan-outputs", "nan-outputs.onnx", "load", "NaN"),
    ];

    private readonly TempFolder _tmp = new("badmodel");
    private MosquittoBroker? _broker;

    public Subscriber Sub { get; private set; } = null!;
    public DaemonHarness Daemon { get; private set; } = null!;
    public string LogDir => Path.Combine(_tmp.Path, "logs");
    public string ServingSha { get; private set; } = "";

    /// <summary>Status right after each file was refused and set aside, by file name.</summary>
    public ConcurrentDictionary<string, StatusSnapshot> StatusAfter { get; } = new(StringComparer.Ordinal);

    /// <summary>The result of a good image classified after every bad drop.</summary>
    public JsonElement? ResultAfter { get; private set; }

    public async Task InitializeAsync()
    {
        _broker = await MosquittoBroker.StartNewAsync();
        Sub = await Subscriber.ConnectAsync(_broker);
        Daemon = await DaemonHarness.StartAsync(_tmp.Path, FloorObserver.ViaBroker(_broker, LogDir));
        ServingSha = Daemon.Models.Current!.Classifier.Model.Sha256;
        var bytes = BuildModels();
        foreach (var c in Cases)
        {
            // Written under a name the watcher ignores, then renamed in (how deployment tools should drop models).
            var part = Path.Combine(Daemon.ModelsDir, c.Name + ".part");
            await File.WriteAllBytesAsync(part, bytes[c.Name]);
            var path = Path.Combine(Daemon.ModelsDir, c.Name);
            File.Move(part, path);
            await DaemonHarness.WaitUntilAsync(() => Daemon.Models.LastRejection is { } r && r.Path == path && r.SetAsideTo is not null,
                $"{c.Name} refused and set aside", 30_000);
            StatusAfter[c.Name] = Daemon.Status.Snapshot();
        }

        // The old model kept serving throughout: a good image now gets its result from it.
        ImageBytes.DropByRename(Daemon.Inbox, "after.png", await File.ReadAllBytesAsync(TestPaths.SampleImages("val")[0]));
        await DaemonHarness.WaitUntilAsync(() => Sub.Results.Count > 0, "a result after the bad drops", 30_000);
        ResultAfter = Sub.Results.First();
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (deadline.ElapsedMilliseconds < 10_000
            && FloorObserver.Events(Sub).Count(e => e.GetProperty("kind").GetString() == "model_rejected") < Cases.Count)
        {
            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        await Daemon.DisposeAsync();
        await Sub.DisposeAsync();
        await _broker!.DisposeAsync();
        _tmp.Dispose();
    }

    /// <summary>The bad files, all derived from a contract-valid generated model on the real dataset's taxonomy.</summary>
    private static Dictionary<string, byte[]> BuildModels()
    {
        var valid = TestModels.CreateBytes(seed: 21);
        var garbage = new byte[20_000];
        new Random(5).NextBytes(garbage);
        var b = new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            ["garbage.onnx"] = garbage,
            ["empty.onnx"] = [],
            ["truncated.onnx"] = valid[..(valid.Length * 2 / 3)],
        };

        var m = Parse(valid);
        m.MetadataProps.Clear();
        b["no-metadata.onnx"] = m.ToByteArray();

        b["broken-tree.onnx"] = WithManifest(valid, man =>
        {
            var tree = man.Taxonomy!.DeepClone();
            tree["levels"]![1]!["classes"]![0]!["parent"] = "no-such-parent";
            return man with { Taxonomy = tree };
        });
        b["bad-thresholds.onnx"] = WithManifest(valid, man => man with { Decoding = man.Decoding with { Thresholds = [0.5, -0.5, 0.2] } });

        m = Parse(valid);
        m.Graph.Output[1].Type.TensorType.Shape.Dim[1].DimValue = 5;
        b["wrong-classes.onnx"] = m.ToByteArray();

        m = Parse(valid);
        m.Graph.Input[0].Type.TensorType.Shape.Dim[2].DimValue = 32;
        m.Graph.Input[0].Type.TensorType.Shape.Dim[3].DimValue = 32;
        b["wrong-input.onnx"] = m.ToByteArray();

        // Declares [N, classes] for level 1 (the contract check passes) but its weights produce 5 scores per image.
        m = Parse(valid);
        var w0 = m.Graph.Initializer.Single(t => t.Name == "w0");
        var b0 = m.Graph.Initializer.Single(t => t.Name == "b0");
        w0.Dims[1] = 5;
        w0.FloatData.Clear();
        w0.FloatData.Add(Enumerable.Repeat(0.1f, 15));
        b0.Dims[0] = 5;
        b0.FloatData.Clear();
        b0.FloatData.Add(Enumerable.Repeat(0f, 5));
        b["lying-shape.onnx"] = m.ToByteArray();

        m = Parse(valid);
        m.Graph.Node.Single(n => n.OpType == "GlobalAveragePool").OpType = "NoSuchOperator";
        b["unknown-op.onnx"] = m.ToByteArray();

        // A well-formed model whose level-1 scores are NaN for every image.
        m = Parse(valid);
        var w = m.Graph.Initializer.Single(t => t.Name == "w0");
        for (var i = 0; i < w.FloatData.Count; i++)
        {
            w.FloatData[i] = float.NaN;
        }

        b["nan-outputs.onnx"] = m.ToByteArray();
        return b;
    }

    private static ModelProto Parse(byte[] bytes) => ModelProto.Parser.ParseFrom(bytes);

    private static byte[] WithManifest(byte[] valid, Func<ModelManifest, ModelManifest> change)
    {
        var m = Parse(valid);
        var manifest = ModelManifest.FromJson(m.MetadataProps.Single(p => p.Key == ModelManifest.MetadataKey).Value);
        ModelContract.WriteManifest(m, change(manifest));
        return m.ToByteArray();
    }
}

/// <summary>Bad model files dropped for hot-swap (issue 5): each is refused at the right stage, set aside with its
/// reasons, reported on MQTT, in the log and in status, and the serving model never changes.</summary>
public sealed class BadModelDropTests(BadModelDropFixture f) : IClassFixture<BadModelDropFixture>
{
    public static TheoryData<string> Kinds()
    {
        var d = new TheoryData<string>();
        foreach (var c in BadModelDropFixture.Cases)
        {
            d.Add(c.Kind);
        }

        return d;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void HotSwap_BadModelDropped_RefusedSetAsideReportedAndOldKeepsServing(string kind)
    {
        var c = BadModelDropFixture.Cases.Single(x => x.Kind == kind);
        var path = Path.Combine(f.Daemon.ModelsDir, c.Name);
        var aside = Path.Combine(f.Daemon.Models.RejectedDir, c.Name);

        // Status right after the refusal: still serving the old model, degraded, and saying which file and why.
        var s = f.StatusAfter[c.Name];
        Assert.Equal(f.ServingSha, s.Model!.Sha256);
        Assert.Equal(path, s.Model.LastRejection!.Path);
        Assert.Equal(aside, s.Model.LastRejection.SetAsideTo);
        Assert.Contains(s.Model.LastRejection.Reasons, r => r.Contains(c.ReasonContains, StringComparison.Ordinal));
        Assert.Equal("degraded", s.Health);
        Assert.Contains(s.Problems, p => p.Contains(c.Name, StringComparison.Ordinal));
        Assert.Equal(BadModelDropFixture.Cases.ToList().IndexOf(c) + 1, s.Model.Rejected);

        // Set aside with its reasons beside it, out of the watched folder.
        Assert.False(File.Exists(path), "no longer in the models folder");
        Assert.True(File.Exists(aside), "moved to rejected/");
        var reasonText = File.ReadAllText(aside + ".reason.txt");
        Assert.StartsWith("refused at " + c.Stage, reasonText, StringComparison.Ordinal);
        Assert.Contains(c.ReasonContains, reasonText, StringComparison.Ordinal);

        // The floor: one model_rejected event naming the file, the stage, the reason and where it went.
        var e = Assert.Single(FloorObserver.EventsFor(f.Sub, "model_rejected", c.Name));
        var d = e.GetProperty("details");
        Assert.Equal(c.Stage, d.GetProperty("stage").GetString());
        Assert.Equal(aside, d.GetProperty("set_aside").GetString());
        Assert.False(string.IsNullOrWhiteSpace(d.GetProperty("reason").GetString()));
        Assert.Contains(c.ReasonContains, e.GetProperty("message").GetString(), StringComparison.Ordinal);

        // The operator: log line 4002 naming the file.
        Assert.NotEmpty(FloorObserver.LogLinesFor(f.LogDir, 4002, "Path", path));
    }

    [Fact]
    public void HotSwap_AfterEveryBadDrop_OldModelStillClassifiesAndNothingWasSwapped()
    {
        Assert.True(f.ResultAfter is not null, "a good image was classified after the bad drops");
        Assert.Equal(f.ServingSha, f.ResultAfter!.Value.GetProperty("model").GetProperty("sha256").GetString());
        Assert.Equal(0, f.Daemon.Models.Swaps);
        Assert.Equal(f.ServingSha, f.Daemon.Models.Current!.Classifier.Model.Sha256);
        Assert.DoesNotContain(FloorObserver.Events(f.Sub), e => e.GetProperty("kind").GetString() == "model_swapped");
        Assert.Equal(BadModelDropFixture.Cases.Count, Directory.GetFiles(f.Daemon.Models.RejectedDir, "*.reason.txt").Length);
    }
}
