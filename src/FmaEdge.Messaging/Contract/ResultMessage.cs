using FmaEdge.Core.Decoding;

namespace FmaEdge.Messaging.Contract;

/// <summary>One classified image, as published on <c>&lt;prefix&gt;/&lt;source&gt;/result</c> (QoS 1, not
/// retained). Immutable. Its identity (<see cref="MessageId"/>, <see cref="Session"/>, <see cref="Seq"/>) is assigned
/// by the outbox in the transaction that stores it, and <see cref="Historical"/> and <see cref="PublishedAt"/> when it
/// actually leaves; <see cref="From"/> leaves them empty. Schema: docs/mqtt.md.</summary>
public sealed record ResultMessage
{
    /// <summary>Payload schema name and version; bumped only on breaking changes.</summary>
    public const string CurrentSchema = "fmaedge.result/1";

    public string Schema { get; init; } = CurrentSchema;

    /// <summary>Unique id of this message (UUID v7, each greater than the last). Consumers order and de-duplicate on
    /// it. Assigned at commit.</summary>
    public string MessageId { get; init; } = "";

    /// <summary>Id of the daemon run that committed the result (a UUID v7, new at every start). Assigned at commit.</summary>
    public string Session { get; init; } = "";

    /// <summary>Per (session, source) sequence number, 1, 2, 3 ... in commit order without gaps. Assigned at commit.</summary>
    public long Seq { get; init; }

    /// <summary>Node name. Filled by the publisher at commit.</summary>
    public string Node { get; init; } = "";

    public required string Source { get; init; }

    /// <summary>When the image was captured (camera frame time) or found (file arrival), UTC.</summary>
    public required DateTimeOffset CapturedAt { get; init; }

    /// <summary>When the result was handed to the publisher (committed to the outbox), UTC.</summary>
    public DateTimeOffset? EnqueuedAt { get; init; }

    /// <summary>When the message was sent to the broker, UTC (set by the publisher at send time).</summary>
    public DateTimeOffset? PublishedAt { get; init; }

    public required ImageRef Image { get; init; }

    /// <summary>The camera's own frame id and timestamp (GenICam cameras); absent for files and plain video.</summary>
    public CameraRef? Camera { get; init; }

    public required ModelRef Model { get; init; }

    /// <summary>Each level's own answer (argmax) with its top-k, root level first.</summary>
    public required IReadOnlyList<LevelResult> Levels { get; init; }

    /// <summary>The path-consistent answer: the valid root-to-leaf path with the highest score.</summary>
    public required PathAnswer Answer { get; init; }

    /// <summary>The coarse answer: the path cut at the deepest level whose confidence passes its threshold.</summary>
    public required CoarseResult Coarse { get; init; }

    /// <summary>True when the per-level argmaxes already form a valid path.</summary>
    public bool ArgmaxConsistent { get; init; }

    public required StageLatency LatencyMs { get; init; }

    /// <summary>True when the message waited in the outbox across a broker outage or a daemon restart.</summary>
    public bool Historical { get; init; }

    /// <summary>True when this image (same source and file key) was already published earlier; see
    /// <see cref="DuplicateOf"/>.</summary>
    public bool Duplicate { get; init; }

    /// <summary>Message id of the earlier publication when <see cref="Duplicate"/> is true.</summary>
    public string? DuplicateOf { get; init; }

    /// <summary>Builds a result from a decoded prediction, without identity (the commit assigns it).
    /// <paramref name="capturedAt"/> is the camera frame time or the file arrival time.</summary>
    public static ResultMessage From(
        HierarchicalPrediction prediction,
        string source,
        DateTimeOffset capturedAt,
        ImageRef image,
        ModelRef model,
        StageLatency latency)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentException.ThrowIfNullOrEmpty(source);
        var levels = prediction.Levels.Select(l => new LevelResult(
            l.Level, l.LevelName, l.Index, l.Label, l.Path, Round(l.Confidence),
            l.TopK.Select(c => new ScoredClass(c.Index, c.Label, c.Path, Round(c.Probability))).ToList())).ToList();
        var path = prediction.Path.Select(ToNode).ToList();
        var coarseNodes = prediction.Coarse.Nodes.Select(ToNode).ToList();
        var leaf = path[^1];
        var deepest = coarseNodes.Count == 0 ? null : coarseNodes[^1];
        return new ResultMessage
        {
            Source = source,
            CapturedAt = capturedAt.ToUniversalTime(),
            Image = image,
            Model = model,
            Levels = levels,
            Answer = new PathAnswer(leaf.Label, leaf.Path, leaf.Confidence, path),
            Coarse = new CoarseResult(prediction.Coarse.Depth, prediction.Coarse.Depth == path.Count,
                deepest?.Label, deepest?.Path, deepest?.Confidence, coarseNodes),
            ArgmaxConsistent = prediction.ArgmaxConsistent,
            LatencyMs = latency,
        };
    }

    private static AnswerNode ToNode(NodeAnswer n) => new(n.Level, n.LevelName, n.Index, n.Label, n.Path, Round(n.Confidence));

    // Six decimals keep payloads short; probabilities are float32 anyway.
    private static double Round(float v) => Math.Round(v, 6);
}

/// <summary>The classified image: an id (file name or frame id), its path or URI, its SHA-256 (hex) and size.</summary>
public sealed record ImageRef(string Id, string? Path, string? Sha256, long? Bytes = null, int? Width = null, int? Height = null);

/// <summary>A camera frame as the camera numbered it: its frame (block) id, and its timestamp in the camera's clock
/// (nanoseconds for GigE Vision / USB3 Vision; not wall time).</summary>
public sealed record CameraRef(long FrameId, long? TimestampNs = null);

/// <summary>The model that answered: its id, version and file SHA-256 (hex), plus the execution provider used.</summary>
public sealed record ModelRef(string Id, string? Version, string Sha256, string? ExecutionProvider = null);

/// <summary>One class with its probability.</summary>
public sealed record ScoredClass(int Index, string Label, string Path, double Confidence);

/// <summary>A level's own argmax answer and its top-k.</summary>
public sealed record LevelResult(int Level, string Name, int Index, string Label, string Path, double Confidence,
    IReadOnlyList<ScoredClass> TopK);

/// <summary>One node of an answer path; confidence is the node's marginal probability.</summary>
public sealed record AnswerNode(int Level, string Name, int Index, string Label, string Path, double Confidence);

/// <summary>The path-consistent answer: its leaf's label, path and confidence, and every node root first.</summary>
public sealed record PathAnswer(string Label, string Path, double Confidence, IReadOnlyList<AnswerNode> Nodes);

/// <summary>The coarse answer: <see cref="Depth"/> levels answered (0 = not sure even of the first level),
/// <see cref="Complete"/> when it reached the leaf; Label/Path/Confidence are the deepest answered node's.</summary>
public sealed record CoarseResult(int Depth, bool Complete, string? Label, string? Path, double? Confidence,
    IReadOnlyList<AnswerNode> Nodes);

/// <summary>Per-stage latency in milliseconds (decode, preprocess, inference, end-to-end; queue wait optional).</summary>
public sealed record StageLatency(double Decode, double Preprocess, double Infer, double Total, double? Queue = null);
