using FmaEdge.Daemon.Configuration;

namespace FmaEdge.Daemon.Sources.Cameras;

/// <summary>Chooses the backend for a camera source from its <c>Backend</c> key; "auto" sends network URLs to ffmpeg
/// (the x86-64 OpenCV runtime has no network protocols; ffmpeg decodes the same everywhere) and everything else to
/// OpenCV. Stateless and thread-safe.</summary>
public static class CameraBackends
{
    public const string Auto = "auto";
    public const string OpenCv = "opencv";
    public const string Ffmpeg = "ffmpeg";
    public const string Aravis = "aravis";

    /// <summary>Every accepted value of the Backend key.</summary>
    public static readonly IReadOnlyList<string> All = [Auto, OpenCv, Ffmpeg, Aravis];

    private static readonly string[] NetworkSchemes = ["rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "rtp://", "srt://", "tcp://"];

    /// <summary>The backend that serves <paramref name="options"/>: its Backend key, or for "auto" ffmpeg for a network URL
    /// and OpenCV otherwise.</summary>
    public static string Resolve(SourceOptions options)
    {
        if (options.Backend != Auto)
        {
            return options.Backend;
        }

        return IsNetworkUrl(options.Uri) ? Ffmpeg : OpenCv;
    }

    /// <summary>True for URLs of a network protocol (RTSP, HTTP, UDP, RTP, RTMP, SRT, TCP).</summary>
    public static bool IsNetworkUrl(string uri) => NetworkSchemes.Any(s => uri.StartsWith(s, StringComparison.OrdinalIgnoreCase));

    /// <summary>A new, unopened connection for one capture attempt.</summary>
    public static IFrameGrabber Create(SourceOptions options) => Resolve(options) switch
    {
        Aravis => new Aravis.AravisGrabber(options, TimeSpan.FromSeconds(options.StallSeconds)),
        Ffmpeg => new FfmpegGrabber(options.Uri, options.FfmpegPath, options.FfmpegInputArgs, TimeSpan.FromSeconds(options.StallSeconds)),
        _ => new OpenCvGrabber(options.Uri),
    };
}
