using FmaEdge.Core.Decoding;

namespace FmaEdge.Messaging.Contract;

/// <summary>One classified image, as published on <c>&lt;prefix&gt;/&lt;source&gt;/result</c> (QoS 1, not
/// retained). Immutable; <see cref="Historical"/> and <see cref="PublishedAt"/> are set by the publisher when
/// the message actually leaves the outbox. Schema: docs/mqtt.md.</summary>
public sealed record ResultMessage
{
    /// <summary>Payload schema name and version; bumped only on breaking changes.</summary>
    public const string CurrentSchema = "fmaedge.result/1";

    public string Schema { get; init; } = CurrentSchema;

    /// <summary>Unique id of this message (UUID v7, time-ordered). Consumers de-duplicate on it.</summary>
    public required string MessageId { get; init; }

    /// <summary>Id of the daemon run that produced the result (new at every start).</summary>
    public required string Session { get; init; }

    /// <summary>Per-source sequence number within <see cref="Session"/>, from 1, without gaps.</summary>
    public required long Seq { get; init; }

    public required string Node { get; init; }

    public required string Source { get; init; }

    /// <summary>When the image was captured (camera frame time) or found (file arrival), UTC.</summary>
    public required DateTimeOffset CapturedAt { get; init; }

    /// <summary>When the result was handed to the publisher (committed to the outbox), UTC.</summary>
    public DateTimeOffset? EnqueuedAt { get; init; }

    /// <summary>When the message was sent to the broker, UTC (set by the publisher at send time).</summary>
    public DateTimeOffset? PublishedAt { get; init; }

    public required ImageRef Image { get; init; }

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

    /// <summary>Builds a result from a decoded prediction. <paramref name="messageId"/> defaults to a new UUID v7.</summary>
    public static ResultMessage From(
        HierarchicalPrediction prediction,
        ResultOrigin origin,
        ImageRef image,
        ModelRef model,
        StageLatency latency,
        string? messageId = null)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(origin);
        var levels = prediction.Levels.Select(l => new LevelResult(
            l.Level, l.LevelName, l.Index, l.Label, l.Path, Round(l.Confidence),
            l.TopK.Select(c => new ScoredClass(c.Index, c.Label, c.Path, Round(c.Probability))).ToList())).ToList();
        var path = prediction.Path.Select(ToNode).ToList();
        var coarseNodes = prediction.Coarse.Nodes.Select(ToNode).ToList();
        var leaf = path[^1];
        var deepest = coarseNodes.Count == 0 ? null : coarseNodes[^1];
        return new ResultMessage
        {
            MessageId = messageId ?? NewMessageId(),
            Session = origin.Session,
            Seq = origin.Seq,
            Node = origin.Node,
            Source = origin.Source,
            CapturedAt = origin.CapturedAt.ToUniversalTime(),
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

    /// <summary>A new unique, time-ordered message id (UUID v7, 32 hex digits without dashes).</summary>
    public static string NewMessageId() => Guid.CreateVersion7().ToString("N");

    private static AnswerNode ToNode(NodeAnswer n) => new(n.Level, n.LevelName, n.Index, n.Label, n.Path, Round(n.Confidence));

    // Six decimals keep payloads short; probabilities are float32 anyway.
    private static double Round(float v) => Math.Round(v, 6);
}

/// <summary>Who produced a result and when: session, node, source, per-source sequence and capture time.</summary>
public sealed record ResultOrigin(string Session, string Node, string Source, long Seq, DateTimeOffset CapturedAt);

/// <summary>The classified image: an id (file name or frame id), its path or URI, its SHA-256 (hex) and size.</summary>
public sealed record ImageRef(string Id, string? Path, string? Sha256, long? Bytes = null, int? Width = null, int? Height = null);

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
