using FmaEdge.Core.Decoding;
using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>One classified image, everything a result message carries except its identity (message id, session,
/// sequence), which the sink assigns when it stores it. Immutable.</summary>
public sealed record ImageResult
{
    public required string Node { get; init; }
    public required string SourceId { get; init; }

    /// <summary>File name for folder sources, frame id for cameras.</summary>
    public required string ImageId { get; init; }

    /// <summary>Path at arrival (folder sources) or the camera URI.</summary>
    public required string ImagePath { get; init; }

    /// <summary>SHA-256 of the image bytes (encoded file, or the raw frame for cameras), lower-case hex.</summary>
    public required string Sha256 { get; init; }

    /// <summary>Size of what <see cref="Sha256"/> hashed: the file's bytes, or the raw frame's.</summary>
    public required long ImageBytes { get; init; }

    /// <summary>De-duplication key within the source: the SHA-256 for files, a unique frame key for cameras.</summary>
    public required string FileKey { get; init; }
    public required DateTimeOffset CapturedUtc { get; init; }

    /// <summary>The camera's own frame id and timestamp (GenICam cameras); null for files and plain video.</summary>
    public CameraRef? Camera { get; init; }
    public required DateTimeOffset ClassifiedUtc { get; init; }
    public required string ModelId { get; init; }

    /// <summary>The model manifest's version; null when the manifest has none.</summary>
    public string? ModelVersion { get; init; }
    public required string ModelSha256 { get; init; }
    public required string ExecutionProvider { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required HierarchicalPrediction Prediction { get; init; }
    /// <summary>Per-stage latency in milliseconds; <c>Total</c> runs from arrival to the result.</summary>
    public required StageLatency Latency { get; init; }
}
