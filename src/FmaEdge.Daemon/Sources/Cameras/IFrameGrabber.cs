using OpenCvSharp;

namespace FmaEdge.Daemon.Sources.Cameras;

/// <summary>One camera backend connection: opens one device or stream and returns its frames one by one. The camera source
/// calls <see cref="Open"/>, <see cref="Read"/> and <see cref="Dispose"/> from its capture thread; <see cref="Abort"/>,
/// <see cref="SoftwareTrigger"/>, <see cref="Info"/> and <see cref="Counters"/> are safe from any thread.</summary>
public interface IFrameGrabber : IDisposable
{
    /// <summary>What is connected, for status (filled by <see cref="Open"/>).</summary>
    CameraInfo Info { get; }

    /// <summary>Backend counters (incomplete frames, resends, triggers sent); zero for backends that have none.</summary>
    GrabberCounters Counters { get; }

    /// <summary>True when the camera sends frames only when triggered (GenICam software or hardware trigger): every frame
    /// is taken, and silence is not a stall (the backend checks the camera is alive itself).</summary>
    bool WaitsForTriggers { get; }

    /// <summary>Features the camera did not know or refused at <see cref="Open"/>, one line each.</summary>
    IReadOnlyList<string> Problems { get; }

    /// <summary>Connects; throws <see cref="CameraException"/> saying why it could not.</summary>
    void Open(CancellationToken cancellationToken);

    /// <summary>Reads the next frame into <paramref name="frame"/> (BGR or mono, 8-bit). Returns null at the end of the
    /// stream; throws <see cref="CameraException"/> on a failure or when no frame came within the backend's deadline.</summary>
    FrameMeta? Read(Mat frame, CancellationToken cancellationToken);

    /// <summary>Asks the camera itself for one frame (GenICam software trigger); false when the camera is not triggered
    /// by software, is not acquiring (opening, lost, closing), or has too many triggers waiting.</summary>
    bool SoftwareTrigger();

    /// <summary>Makes a blocked <see cref="Open"/> or <see cref="Read"/> return soon where the backend can (kills the
    /// ffmpeg process, stops the stream); never blocks. Backends that cannot interrupt a native call rely on the source
    /// abandoning the capture thread.</summary>
    void Abort(string reason);
}

/// <summary>Capture facts of one frame: when it was triggered or captured (UTC), and the camera's own frame id and
/// timestamp when the camera has them.</summary>
public readonly record struct FrameMeta(DateTimeOffset CapturedUtc, long? CameraFrameId = null, long? CameraTimestampNs = null);

/// <summary>What a backend is connected to. Immutable.</summary>
public sealed record CameraInfo(string Backend, string Address, string? Model = null, string? Serial = null, string? PixelFormat = null,
    int Width = 0, int Height = 0);

/// <summary>Counters a backend keeps; read from any thread.</summary>
public sealed class GrabberCounters
{
    private long _incomplete;
    private long _resends;
    private long _triggersSent;

    /// <summary>Frames the camera started but did not complete (missing packets, timeouts); not delivered.</summary>
    public long Incomplete => Interlocked.Read(ref _incomplete);

    /// <summary>Packets the host asked the camera to send again (GigE Vision resend requests).</summary>
    public long Resends => Interlocked.Read(ref _resends);

    /// <summary>Software triggers sent to the camera.</summary>
    public long TriggersSent => Interlocked.Read(ref _triggersSent);

    public void AddIncomplete(long n) => Interlocked.Add(ref _incomplete, n);
    public void AddResends(long n) => Interlocked.Add(ref _resends, n);
    public void AddTriggerSent() => Interlocked.Increment(ref _triggersSent);
}

/// <summary>A camera could not be opened or stopped delivering; the message says why (shown in status and events).</summary>
public sealed class CameraException(string message) : Exception(message);
