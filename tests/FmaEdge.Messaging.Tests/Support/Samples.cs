using System.Security.Cryptography;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Support;

/// <summary>Real inputs for messages: the real defect tree, real images (path, size, SHA-256) and predictions
/// decoded by the real decoder from seeded logits. Thread-safe (immutable after first use).</summary>
public static class Samples
{
    private static readonly Lazy<CategoryTree> LazyTree = new(() => DatasetLoader.ScanFolder(TestPaths.DatasetVal).Tree);
    private static readonly Lazy<IReadOnlyList<string>> LazyImages = new(() => TestPaths.SampleImages("val", 2));

    public static CategoryTree Tree => LazyTree.Value;

    public static IReadOnlyList<string> Images => LazyImages.Value;

    public static readonly ModelRef Model = new("defects-convnext_atto-128", "1", new string('a', 64), "CPU");

    /// <summary>A prediction decoded by the real decoder (thresholds 0.5 so coarse answers vary).</summary>
    public static HierarchicalPrediction Prediction(int seed)
    {
        var decoder = new HierarchicalDecoder(Tree, new FmaEdge.Core.Contract.DecodingSpec { Thresholds = [0.5, 0.5, 0.5], TopK = 3 });
        var rng = new Random(seed);
        var outputs = Tree.Levels.Select(l => Enumerable.Range(0, l.Count).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray()).ToList();
        return decoder.Decode(outputs);
    }

    public static ImageRef Image(int i)
    {
        var path = Images[i % Images.Count];
        var bytes = File.ReadAllBytes(path);
        return new ImageRef(Path.GetFileName(path), path, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.Length);
    }

    /// <summary>The i-th result of a source, without identity (the commit assigns message id, session and seq).</summary>
    public static ResultMessage Result(string source, int i) =>
        ResultMessage.From(Prediction(i), source, DateTimeOffset.UtcNow, Image(i), Model, new StageLatency(1.25, 0.5, 3.75, 6.0));

    /// <summary>Options for a test publisher against a broker port, with fast reconnects.</summary>
    public static MqttOptions Options(int port, string outboxPath, string node = "test-node") => new()
    {
        Host = "127.0.0.1",
        Port = port,
        NodeName = node,
        OutboxPath = outboxPath,
        Embedded = new EmbeddedBrokerOptions { Enabled = false },
        ReconnectMinSeconds = 0.1,
        ReconnectMaxSeconds = 0.5,
        KeepAliveSeconds = 5,
        ConnectTimeoutSeconds = 3,
        PublishTimeoutSeconds = 5,
        DrainOnStopSeconds = 5,
    };
}
