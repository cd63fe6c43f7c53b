using OpenCvSharp;
using static FmaEdge.Daemon.Sources.Cameras.Aravis.AravisNative;

namespace FmaEdge.Daemon.Sources.Cameras.Aravis;

/// <summary>GenICam pixel formats the backend delivers and how each becomes a frame for the pipeline: Mono8 and colour as
/// 8-bit, Mono16 as 16-bit and Mono12 shifted to the top of 16 bits, so the pipeline scales both to 8 bits exactly as the
/// trainer reads a 16-bit image (value / 257); Bayer patterns demosaiced to BGR. Stateless.</summary>
internal static class AravisPixels
{
    // PFNC codes (GenICam Pixel Format Naming Convention).
    private const uint Mono8 = 0x01080001;
    private const uint Mono12 = 0x01100005;
    private const uint Mono16 = 0x01100007;
    private const uint BayerGR8 = 0x01080008;
    private const uint BayerRG8 = 0x01080009;
    private const uint BayerGB8 = 0x0108000A;
    private const uint BayerBG8 = 0x0108000B;
    private const uint Rgb8 = 0x02180014;
    private const uint Bgr8 = 0x02180015;

    public static readonly IReadOnlyList<string> Supported = ["Mono8", "Mono12", "Mono16", "BayerGR8", "BayerRG8", "BayerGB8", "BayerBG8", "RGB8", "BGR8", "RGB8Packed", "BGR8Packed"];

    public static bool IsSupported(string name) => Supported.Contains(name);

    /// <summary>Copies (and converts) the buffer's image into <paramref name="frame"/>.</summary>
    public static void ToMat(IntPtr buffer, Mat frame)
    {
        var width = arv_buffer_get_image_width(buffer);
        var height = arv_buffer_get_image_height(buffer);
        var format = arv_buffer_get_image_pixel_format(buffer);
        var data = arv_buffer_get_data(buffer, out var size);
        var (type, bytesPerPixel) = format switch
        {
            Mono12 or Mono16 => (MatType.CV_16UC1, 2),
            Rgb8 or Bgr8 => (MatType.CV_8UC3, 3),
            Mono8 or BayerGR8 or BayerRG8 or BayerGB8 or BayerBG8 => (MatType.CV_8UC1, 1),
            _ => throw new CameraException($"pixel format 0x{format:X8} is not supported"),
        };
        if ((long)size < (long)width * height * bytesPerPixel)
        {
            throw new CameraException($"buffer of {size} bytes is too small for {width}x{height}");
        }

        using var raw = Mat.FromPixelData(height, width, type, data);
        switch (format)
        {
            case Mono12:
                raw.ConvertTo(frame, MatType.CV_16UC1, 16); // 12 significant bits moved to the top of 16
                break;
            case Rgb8:
                Cv2.CvtColor(raw, frame, ColorConversionCodes.RGB2BGR);
                break;
            // OpenCV names a Bayer pattern by the second row's first two pixels; GenICam by the first row's.
            case BayerRG8:
                Cv2.CvtColor(raw, frame, ColorConversionCodes.BayerBG2BGR);
                break;
            case BayerBG8:
                Cv2.CvtColor(raw, frame, ColorConversionCodes.BayerRG2BGR);
                break;
            case BayerGR8:
                Cv2.CvtColor(raw, frame, ColorConversionCodes.BayerGB2BGR);
                break;
            case BayerGB8:
                Cv2.CvtColor(raw, frame, ColorConversionCodes.BayerGR2BGR);
                break;
            default:
                raw.CopyTo(frame);
                break;
        }
    }
}
