using System.Globalization;
using OpenCvSharp;

namespace FmaEdge.Daemon.Sources.Cameras;

/// <summary>OpenCV VideoCapture: a V4L2 device index or path, a file, a GStreamer pipeline (where OpenCV has GStreamer),
/// or a network URL where OpenCV's FFmpeg has the protocol (the Jetson's OpenCV; not the x86-64 runtime package).
/// A read is a native call without a deadline: the camera source watches frame age and abandons a stuck one.</summary>
public sealed class OpenCvGrabber(string uri) : IFrameGrabber
{
    private VideoCapture? _cap;

    public CameraInfo Info { get; private set; } = new("opencv", uri);

    public GrabberCounters Counters { get; } = new();

    public bool WaitsForTriggers => false;

    public IReadOnlyList<string> Problems => [];

    public void Open(CancellationToken cancellationToken)
    {
        _cap = Create(uri);
        if (!_cap.IsOpened())
        {
            throw new CameraException($"cannot open {uri}");
        }

        Info = Info with { Width = _cap.FrameWidth, Height = _cap.FrameHeight, PixelFormat = "BGR8" };
    }

    public FrameMeta? Read(Mat frame, CancellationToken cancellationToken)
    {
        var cap = _cap ?? throw new InvalidOperationException("not open");
        if (!cap.Read(frame) || frame.Empty())
        {
            return null;
        }

        return new FrameMeta(DateTimeOffset.UtcNow);
    }

    public bool SoftwareTrigger() => false;

    public void Abort(string reason)
    {
        // A VideoCapture cannot be interrupted safely from another thread; the source abandons the capture thread.
    }

    public void Dispose()
    {
        _cap?.Dispose();
        _cap = null;
    }

    private static VideoCapture Create(string uri)
    {
        if (int.TryParse(uri, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return new VideoCapture(index, VideoCaptureAPIs.V4L2);
        }

        if (uri.StartsWith("/dev/video", StringComparison.Ordinal))
        {
            return new VideoCapture(uri, VideoCaptureAPIs.V4L2);
        }

        if (uri.Contains('!', StringComparison.Ordinal))
        {
            return new VideoCapture(uri, VideoCaptureAPIs.GSTREAMER);
        }

        return new VideoCapture(uri.StartsWith("file://", StringComparison.Ordinal) ? uri["file://".Length..] : uri, VideoCaptureAPIs.ANY);
    }
}
