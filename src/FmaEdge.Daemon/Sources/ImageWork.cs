using OpenCvSharp;

namespace FmaEdge.Daemon.Sources;

/// <summary>One image entering the pipeline: a file to read or a camera frame already in memory. Owned by the pipeline
/// once written to its input; the pipeline calls <see cref="Completion"/> exactly once.</summary>
public sealed class ImageWork
{
    public required string SourceId { get; init; }

    /// <summary>Arrival number within the source (orders reports and frame keys). Not the published <c>seq</c>: the sink
    /// assigns that when it stores a result, so images that give no result take no number.</summary>
    public required long Sequence { get; init; }
    public required string ImageId { get; init; }

    /// <summary>The file to read (folder sources); null for frames.</summary>
    public string? FilePath { get; init; }

    /// <summary>A camera frame in BGR order as captured (disposed by the pipeline); null for files.</summary>
    public Mat? Frame { get; init; }

    /// <summary>De-duplication key for frames (files are keyed by their SHA-256 once read).</summary>
    public string? FrameKey { get; init; }

    /// <summary>True when a file already in the journal should be skipped without an event (leave mode after a restart).</summary>
    public bool SilentIfCommitted { get; init; }

    public required DateTimeOffset CapturedUtc { get; init; }

    /// <summary>The camera's frame id and timestamp when the camera numbers its frames (GenICam); null otherwise.</summary>
    public FmaEdge.Messaging.Contract.CameraRef? Camera { get; init; }

    /// <summary>Stopwatch timestamp at arrival, the start of the total latency.</summary>
    public required long ArrivalTimestamp { get; init; }

    /// <summary>Told how the image ended; the source moves or remembers the file.</summary>
    public required IWorkCompletion Completion { get; init; }
}

/// <summary>How an image left the pipeline.</summary>
public enum WorkStatus
{
    /// <summary>Classified and committed to the sink.</summary>
    Published,

    /// <summary>Its file key was committed before: reported as a duplicate (or skipped silently in leave mode).</summary>
    Duplicate,

    /// <summary>Could not be decoded or classified; <see cref="WorkOutcome.Reason"/> says why.</summary>
    Failed,

    /// <summary>Already handled before (leave mode after a restart): nothing reported, nothing to redo.</summary>
    Skipped,

    /// <summary>Not finished (pipeline stopped, result could not be stored): the source keeps the file for a retry.</summary>
    Abandoned,
}

/// <summary>The end of one image's trip.</summary>
public sealed record WorkOutcome(WorkStatus Status, string? Reason = null, string? MessageId = null);

/// <summary>Receives the outcome of an image. Called once, from the pipeline's publish stage.</summary>
public interface IWorkCompletion
{
    /// <summary>Acts on the outcome (move the file, count the frame). Must not throw.</summary>
    ValueTask CompleteAsync(ImageWork work, WorkOutcome outcome, CancellationToken cancellationToken);
}

/// <summary>An image source (folder, camera). Started once, stopped once; reports its state for status.
/// Implementations are thread-safe for <see cref="GetState"/>.</summary>
public interface IImageSource : IAsyncDisposable
{
    string Id { get; }

    /// <summary>Opens the source and begins writing work to the pipeline input. Returns once the source is open (or has
    /// failed to open and is retrying in the background).</summary>
    Task StartAsync(IImageSink input, CancellationToken cancellationToken);

    /// <summary>Stops producing new work. Work already handed over still completes.</summary>
    Task StopAsync(CancellationToken cancellationToken);

    /// <summary>A snapshot for status.</summary>
    SourceState GetState();

    /// <summary>External trigger (camera trigger sampling); false when the source does not take triggers.</summary>
    bool Trigger();
}

/// <summary>Where sources write work: the pipeline's bounded input.</summary>
public interface IImageSink
{
    /// <summary>Waits while the pipeline is full (files never drop). Throws when the pipeline is shutting down.</summary>
    ValueTask WriteAsync(ImageWork work, CancellationToken cancellationToken);
}

/// <summary>The states a source reports (status, stats, metrics), as docs/operations.md spells them.</summary>
public static class SourceStates
{
    public const string Stopped = "stopped";
    public const string Watching = "watching";
    public const string Unavailable = "unavailable";
    public const string Connecting = "connecting";
    public const string Streaming = "streaming";
    public const string Reconnecting = "reconnecting";

    /// <summary>True for the states in which a source delivers (a folder watched, a camera streaming).</summary>
    public static bool IsUp(string state) => state is Watching or Streaming;
}

/// <summary>Status of one source.</summary>
public sealed record SourceState(string Id, string Type, string State, long Frames, double Fps, double? LastFrameAgeSeconds,
    long Errors, long Dropped, long Pending, string? Detail)
{
    /// <summary>Camera capture attempts given up since start because an open or read stayed blocked past its deadline.</summary>
    public long AbandonedCaptures { get; init; }

    /// <summary>Abandoned capture attempts whose thread has not returned yet (each holds a thread, often a device).</summary>
    public int StuckCaptures { get; init; }

    /// <summary>Camera details (camera sources only).</summary>
    public CameraStatus? Camera { get; init; }
}

/// <summary>What a camera source is connected to and its camera counters since start: backend, address, model, serial,
/// pixel format, size, frames the camera started but did not complete, packet resends, triggers received (status socket,
/// MQTT) and frames delivered to the pipeline, and the features the camera did not know or refused at the last connect.</summary>
public sealed record CameraStatus(string Backend, string Address, string? Model, string? Serial, string? PixelFormat, int Width, int Height,
    long IncompleteFrames, long Resends, long TriggersReceived, long FramesDelivered, IReadOnlyList<string> FeatureProblems);
