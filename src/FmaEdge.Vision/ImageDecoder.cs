using OpenCvSharp;

namespace FmaEdge.Vision;

/// <summary>Limits that keep a bad or hostile file from costing unbounded memory or time.</summary>
public sealed record DecodeLimits
{
    /// <summary>Largest file read (bytes).</summary>
    public long MaxBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>Largest declared width x height; checked from the header before decoding.</summary>
    public long MaxPixels { get; init; } = 64L * 1024 * 1024;

    /// <summary>Smallest accepted side; a 1x1 "image" carries nothing to classify.</summary>
    public int MinSide { get; init; } = 8;

    public static DecodeLimits Default { get; } = new();
}

/// <summary>A decoded image: 8-bit pixels, RGB or, when the caller asked to keep gray and the image is gray, one gray
/// channel (<see cref="ImageDecoder.ToPixels"/>), at 1/<see cref="Reduction"/> of the file's size; and the file's own
/// size. The caller disposes <see cref="Pixels"/>.</summary>
public sealed record DecodedImage(Mat Pixels, int Width, int Height, int Reduction);

/// <summary>Decodes image files into 8-bit, 3-channel RGB Mats (or, when asked, one gray channel for a gray image):
/// grayscale is otherwise replicated, alpha dropped,
/// 16-bit and float images rescaled to 8 bits. Every failure is an <see cref="ImageDecodeException"/>
/// with a reason code. Stateless and thread-safe; callers dispose the returned Mat.</summary>
public static class ImageDecoder
{
    /// <summary>Reads and decodes a file.</summary>
    public static Mat LoadRgb(string path, DecodeLimits? limits = null)
    {
        limits ??= DecodeLimits.Default;
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (Directory.Exists(path))
            {
                throw new ImageDecodeException(DecodeFailure.Unreadable, $"'{path}' is a directory, not an image file");
            }

            if (!info.Exists)
            {
                throw new ImageDecodeException(DecodeFailure.Unreadable, $"'{path}' does not exist (deleted before it was read?)");
            }

            if (info.Length > limits.MaxBytes)
            {
                throw new ImageDecodeException(DecodeFailure.TooLarge, $"file is {info.Length:N0} bytes, over the {limits.MaxBytes:N0}-byte limit");
            }

            if (info.Length == 0)
            {
                // Never open a zero-length entry: a named pipe (also 0 bytes) would block the reader forever.
                throw new ImageDecodeException(DecodeFailure.Empty, "file is empty (0 bytes; pipes and devices are not opened)");
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(DecodeFailure.Unreadable, $"cannot read '{path}': {e.Message}");
        }

        return DecodeRgb(bytes, limits);
    }

    /// <summary>Decodes encoded image bytes (PNG, JPEG, BMP, TIFF, WebP).</summary>
    public static Mat DecodeRgb(byte[] bytes, DecodeLimits? limits = null) => Decode(bytes, limits).Pixels;

    /// <summary>Decodes an image that will be resized to <paramref name="modelWidth"/> x <paramref name="modelHeight"/>: a
    /// JPEG at least <see cref="ReductionMargin"/> times larger than that at 1/2, 1/4 or 1/8 of its size is decoded at that
    /// size by libjpeg's DCT scaling (OpenCV's IMREAD_REDUCED_COLOR_*), which costs a fraction of a full decode and still
    /// leaves the resize to average at least two pixels per model pixel. Other formats decode at full size.
    /// <see cref="DecodedImage.Width"/>/<see cref="DecodedImage.Height"/> are the file's own size either way.</summary>
    public static DecodedImage DecodeRgbForModel(byte[] bytes, int modelWidth, int modelHeight, DecodeLimits? limits = null) =>
        Decode(bytes, limits, (modelWidth, modelHeight));

    /// <summary>How much larger than the model input a reduced JPEG must still be, per side.</summary>
    public const int ReductionMargin = 2;

    /// <summary>The largest of 8, 4, 2 that leaves a <paramref name="width"/> x <paramref name="height"/> JPEG at least
    /// <see cref="ReductionMargin"/> times the model input per side; 1 when none does.</summary>
    public static int JpegReduction(long width, long height, int modelWidth, int modelHeight)
    {
        foreach (var f in new[] { 8, 4, 2 })
        {
            if (width / f >= (long)ReductionMargin * modelWidth && height / f >= (long)ReductionMargin * modelHeight)
            {
                return f;
            }
        }

        return 1;
    }

    /// <summary>Decodes encoded image bytes; with <paramref name="reduceFor"/> (the model input) as
    /// <see cref="DecodeRgbForModel"/>, without it always at full size. With <paramref name="keepGray"/> a gray image
    /// stays one gray channel (<see cref="ToPixels"/>): the daemon's path, which resizes one channel instead of three.</summary>
    public static DecodedImage Decode(byte[] bytes, DecodeLimits? limits = null, (int Width, int Height)? reduceFor = null, bool keepGray = false)
    {
        limits ??= DecodeLimits.Default;
        if (bytes.Length == 0)
        {
            throw new ImageDecodeException(DecodeFailure.Empty, "file is empty (0 bytes)");
        }

        if (bytes.LongLength > limits.MaxBytes)
        {
            throw new ImageDecodeException(DecodeFailure.TooLarge, $"image is {bytes.LongLength:N0} bytes, over the {limits.MaxBytes:N0}-byte limit");
        }

        var (format, w, h) = ImageHeader.Read(bytes);
        if (format == ImageHeader.Format.Unknown)
        {
            throw new ImageDecodeException(DecodeFailure.NotAnImage, "not a PNG, JPEG, BMP, TIFF or WebP file (unrecognised header)");
        }

        if (format == ImageHeader.Format.Png && bytes.Length >= 24 && (w == 0 || h == 0))
        {
            // A complete IHDR that declares no pixels: say so rather than "undecodable".
            throw new ImageDecodeException(DecodeFailure.TooSmall, $"header declares a {w}x{h} image");
        }

        if (w * h > limits.MaxPixels)
        {
            throw new ImageDecodeException(DecodeFailure.TooLarge, $"declared size {w}x{h} is over the {limits.MaxPixels:N0}-pixel limit");
        }

        var reduction = format == ImageHeader.Format.Jpeg && reduceFor is { } model ? JpegReduction(w, h, model.Width, model.Height) : 1;
        if (ImageHeader.LooksTruncated(format, bytes))
        {
            throw new ImageDecodeException(DecodeFailure.Truncated, $"{format} data ends before its end marker (truncated or still being written)");
        }

        Mat raw;
        try
        {
            // libjpeg's reduced decode has a colour and a gray flavour; a gray JPEG decoded "in colour" is three copies.
            var gray = keepGray && ImageHeader.JpegComponents(bytes) == 1;
            var mode = reduction switch
            {
                8 => gray ? ImreadModes.ReducedGrayscale8 : ImreadModes.ReducedColor8,
                4 => gray ? ImreadModes.ReducedGrayscale4 : ImreadModes.ReducedColor4,
                2 => gray ? ImreadModes.ReducedGrayscale2 : ImreadModes.ReducedColor2,
                _ => ImreadModes.Unchanged,
            };
            raw = Cv2.ImDecode(bytes, mode | ImreadModes.IgnoreOrientation);
        }
        catch (OpenCVException e)
        {
            throw new ImageDecodeException(DecodeFailure.Undecodable, $"{format} decoder failed: {e.Message}");
        }

        var keepRaw = false;
        try
        {
            if (raw.Empty())
            {
                throw new ImageDecodeException(DecodeFailure.Undecodable, $"{format} data could not be decoded (corrupt or unsupported variant)");
            }

            if ((long)raw.Rows * raw.Cols > limits.MaxPixels)
            {
                throw new ImageDecodeException(DecodeFailure.TooLarge, $"decoded size {raw.Cols}x{raw.Rows} is over the {limits.MaxPixels:N0}-pixel limit");
            }

            if (raw.Rows * reduction < limits.MinSide || raw.Cols * reduction < limits.MinSide)
            {
                throw new ImageDecodeException(DecodeFailure.TooSmall, $"image is {raw.Cols}x{raw.Rows}, smaller than the {limits.MinSide}-pixel minimum side");
            }

            var (fileWidth, fileHeight) = reduction == 1 ? (raw.Cols, raw.Rows) : ((int)w, (int)h);
            if (keepGray && raw.Type() == MatType.CV_8UC1)
            {
                // Already what the caller keeps: hand the decoder's Mat over instead of copying it.
                keepRaw = true;
                return new DecodedImage(raw, fileWidth, fileHeight, reduction);
            }

#pragma warning disable CA2000 // the converted Mat moves into the returned image; the caller disposes it
            return new DecodedImage(ToPixels(raw, keepGray), fileWidth, fileHeight, reduction);
#pragma warning restore CA2000
        }
        finally
        {
            if (!keepRaw)
            {
                raw.Dispose();
            }
        }
    }

    /// <summary>Converts any decoded Mat (1-4 channels, 8/16-bit integer or float) to 8-bit RGB.</summary>
    public static Mat ToRgb8(Mat src) => ToPixels(src, keepGray: false);

    /// <summary>Converts any decoded Mat (1-4 channels, 8/16-bit integer or float) to 8-bit RGB, or with
    /// <paramref name="keepGray"/> a gray one (gray, or gray + alpha) to one 8-bit gray channel. The preprocessor gives a
    /// gray image the same tensor as its RGB copy (each plane from the one channel; tested on real images), at a third
    /// of the resize work and without the conversion.</summary>
    public static Mat ToPixels(Mat src, bool keepGray)
    {
        var eight = To8Bit(src);
        if (eight.Channels() is 1 or 2)
        {
            // Gray, or gray + alpha: the gray plane, kept as it is or replicated into RGB.
            var gray = eight;
            if (eight.Channels() == 2)
            {
                using (eight)
                {
                    gray = eight.ExtractChannel(0);
                }
            }

            if (keepGray)
            {
                return gray;
            }

            using (gray)
            {
                var replicated = new Mat();
                Cv2.CvtColor(gray, replicated, ColorConversionCodes.GRAY2RGB);
                return replicated;
            }
        }

        using (eight)
        {
            var rgb = new Mat();
            switch (eight.Channels())
            {
                case 3:
                    Cv2.CvtColor(eight, rgb, ColorConversionCodes.BGR2RGB);
                    break;
                case 4:
                    Cv2.CvtColor(eight, rgb, ColorConversionCodes.BGRA2RGB);
                    break;
                default:
                    rgb.Dispose();
                    throw new ImageDecodeException(DecodeFailure.Unsupported, $"{eight.Channels()}-channel images are not supported");
            }

            return rgb;
        }
    }

    private static Mat To8Bit(Mat src)
    {
        var depth = src.Depth();
        var dst = new Mat();
        if (depth == MatType.CV_8U)
        {
            src.CopyTo(dst);
        }
        else if (depth == MatType.CV_8S)
        {
            src.ConvertTo(dst, MatType.CV_8U, 1, 128);
        }
        else if (depth == MatType.CV_16U)
        {
            src.ConvertTo(dst, MatType.CV_8U, 1.0 / 257.0);
        }
        else if (depth == MatType.CV_16S)
        {
            src.ConvertTo(dst, MatType.CV_8U, 1.0 / 257.0, 128);
        }
        else
        {
            // Float (and 32-bit int) data: [0,1] is the common convention; otherwise stretch min..max.
            using var single = src.Reshape(1);
            single.MinMaxLoc(out double min, out double max);
            // MinMaxLoc skips NaN (every comparison with it is false), and the conversion would turn NaN pixels into
            // silent zeros: CheckRange sees NaN and infinities.
            if (!double.IsFinite(min) || !double.IsFinite(max) || !Cv2.CheckRange(single, quiet: true))
            {
                dst.Dispose();
                throw new ImageDecodeException(DecodeFailure.Unsupported, "float image holds NaN or infinite values");
            }

            if (min >= 0 && max <= 1)
            {
                src.ConvertTo(dst, MatType.CV_8U, 255.0);
            }
            else
            {
                var scale = max > min ? 255.0 / (max - min) : 0;
                src.ConvertTo(dst, MatType.CV_8U, scale, -min * scale);
            }
        }

        return dst;
    }
}
