using FmaEdge.Daemon.Sources.Cameras;

namespace FmaEdge.Daemon.Sources;

/// <summary>Where a capture thread is: inside a native call that may never return (open, read), or in managed code.</summary>
public enum CaptureStage
{
    Opening,
    Reading,
    Working,
    Ended,
}

/// <summary>One try at opening and reading a camera, on a thread of its own. The supervisor gives each native call a
/// deadline; a call that overruns it (blocked inside OpenCV or the kernel, where .NET cannot interrupt it) gets the
/// attempt abandoned: the thread is left to return on its own, and whatever it produces after that is thrown away.
/// Thread-safe: the capture thread writes the stage, the supervisor reads it and retires or abandons.</summary>
internal sealed class CaptureAttempt(long number, TimeProvider time)
{
    private int _stage = (int)CaptureStage.Opening;
    private long _stageSince = time.GetTimestamp();
    private int _abandoned;
    private long _abandonedAt;
    private volatile bool _retired;
    private IFrameGrabber? _grabber;

    public long Number { get; } = number;

    /// <summary>Completes with the frame size once open, or null when the open failed (<see cref="Ended"/> says why).</summary>
    public TaskCompletionSource<(int Width, int Height)?> Opened { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with the reason the capture stopped delivering (end of stream, read failure, retired).</summary>
    public TaskCompletionSource<string> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the thread has left every native call and disposed its capture.</summary>
    public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CaptureStage Stage => (CaptureStage)Volatile.Read(ref _stage);

    /// <summary>How long the thread has been in its current stage.</summary>
    public TimeSpan InStageFor => time.GetElapsedTime(Interlocked.Read(ref _stageSince));

    /// <summary>True once the supervisor gave up on it; the thread may still be blocked.</summary>
    public bool Abandoned => Volatile.Read(ref _abandoned) == 1;

    /// <summary>How long ago it was abandoned (zero when it was not).</summary>
    public TimeSpan SinceAbandoned => Abandoned ? time.GetElapsedTime(Interlocked.Read(ref _abandonedAt)) : TimeSpan.Zero;

    /// <summary>Abandoned and its thread has not come back yet.</summary>
    public bool Stuck => Abandoned && !Finished.Task.IsCompleted;

    /// <summary>True once the attempt should stop at its next chance and hand over nothing more.</summary>
    public bool Retired => _retired;

    public void Enter(CaptureStage stage)
    {
        Interlocked.Exchange(ref _stageSince, time.GetTimestamp());
        Volatile.Write(ref _stage, (int)stage);
    }

    /// <summary>The backend connection, once created; told to abort when the attempt is retired, so a backend that can
    /// interrupt its blocked call (ffmpeg: its process is killed) returns at once.</summary>
    public IFrameGrabber? Grabber
    {
        get => Volatile.Read(ref _grabber);
        set
        {
            Volatile.Write(ref _grabber, value);
            if (_retired)
            {
                value?.Abort("retired");
            }
        }
    }

    public void Retire(string reason = "retired")
    {
        _retired = true;
        Grabber?.Abort(reason);
    }

    /// <summary>Marks the attempt abandoned (and retired); false when it already was.</summary>
    public bool Abandon()
    {
        Retire("abandoned");
        if (Interlocked.Exchange(ref _abandoned, 1) == 1)
        {
            return false;
        }

        Interlocked.Exchange(ref _abandonedAt, time.GetTimestamp());
        return true;
    }
}
