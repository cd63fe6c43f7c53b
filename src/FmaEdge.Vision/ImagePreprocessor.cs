using FmaEdge.Core.Contract;
using OpenCvSharp;

namespace FmaEdge.Vision;

/// <summary>The one preprocessing path: an 8-bit RGB (or one-channel gray) image becomes the model's normalised CHW float
/// tensor; a gray image gives exactly the tensor of its RGB copy.
/// The trainer (before augmentation-free evaluation and after augmentation in training) and the daemon both
/// call this class, so what the model saw in training is what it sees on the floor. Immutable and
/// thread-safe.</summary>
public sealed class ImagePreprocessor
{
    private readonly PreprocessSpec _spec;
    private readonly InterpolationFlags _interp;
    private readonly float[] _mul = new float[3];
    private readonly float[] _add = new float[3];
    private readonly bool _bgr;

    /// <summary>Creates a preprocessor for a target size.</summary>
    public ImagePreprocessor(PreprocessSpec spec, int width, int height)
    {
        if (!ResizeModes.All.Contains(spec.Resize))
        {
            throw new ArgumentException($"unknown resize mode '{spec.Resize}'", nameof(spec));
        }

        if (spec.Mean.Count != 3 || spec.Std.Count != 3)
        {
            throw new ArgumentException("mean and std need three values", nameof(spec));
        }

        _spec = spec;
        Width = width;
        Height = height;
        _interp = spec.Interpolation switch
        {
            "area" => InterpolationFlags.Area,
            "linear" => InterpolationFlags.Linear,
            "cubic" => InterpolationFlags.Cubic,
            "nearest" => InterpolationFlags.Nearest,
            _ => throw new ArgumentException($"unknown interpolation '{spec.Interpolation}'", nameof(spec)),
        };
        _bgr = spec.ChannelOrder == "BGR";
        for (var c = 0; c < 3; c++)
        {
            // (x / scale - mean) / std  ==  x * mul + add
            _mul[c] = (float)(1.0 / (spec.Scale * spec.Std[c]));
            _add[c] = (float)(-spec.Mean[c] / spec.Std[c]);
        }
    }

    /// <summary>The preprocessor a model's manifest asks for.</summary>
    public static ImagePreprocessor For(ModelManifest manifest) =>
        new(manifest.Preprocess, manifest.Input.Width, manifest.Input.Height);

    public int Width { get; }
    public int Height { get; }

    /// <summary>Floats per image: 3 x height x width.</summary>
    public int TensorLength => 3 * Width * Height;

    /// <summary>The spec this preprocessor applies.</summary>
    public PreprocessSpec Spec => _spec;

    /// <summary>Resizes an 8-bit RGB or gray image per the spec (stretch, letterbox or centre crop), keeping its channels.
    /// The caller disposes the result.</summary>
    public Mat Resize(Mat rgb)
    {
        if (!IsSupported(rgb))
        {
            throw new ArgumentException($"expected an 8-bit RGB or gray image, got {rgb.Type()}", nameof(rgb));
        }

        if (rgb.Type() == MatType.CV_8UC1 && _interp == InterpolationFlags.Cubic)
        {
            // OpenCV's one-channel cubic resize rounds a few pixels differently from its three-channel one; make the RGB
            // copy first so a gray image still gets exactly the tensor the trainer made from it.
            using var copy = new Mat();
            Cv2.CvtColor(rgb, copy, ColorConversionCodes.GRAY2RGB);
            return Resize(copy);
        }

        var dst = new Mat();
        switch (_spec.Resize)
        {
            case ResizeModes.Stretch:
                Cv2.Resize(rgb, dst, new Size(Width, Height), 0, 0, _interp);
                break;
            case ResizeModes.Letterbox:
                {
                    var scale = Math.Min((double)Width / rgb.Cols, (double)Height / rgb.Rows);
                    var w = Math.Max(1, (int)Math.Round(rgb.Cols * scale));
                    var h = Math.Max(1, (int)Math.Round(rgb.Rows * scale));
                    using var resized = new Mat();
                    Cv2.Resize(rgb, resized, new Size(w, h), 0, 0, _interp);
                    var left = (Width - w) / 2;
                    var top = (Height - h) / 2;
                    Cv2.CopyMakeBorder(resized, dst, top, Height - h - top, left, Width - w - left, BorderTypes.Constant, Scalar.All(_spec.PadValue));
                    break;
                }

            default:
                {
                    var scale = Math.Max((double)Width / rgb.Cols, (double)Height / rgb.Rows);
                    var w = Math.Max(Width, (int)Math.Round(rgb.Cols * scale));
                    var h = Math.Max(Height, (int)Math.Round(rgb.Rows * scale));
                    using var resized = new Mat();
                    Cv2.Resize(rgb, resized, new Size(w, h), 0, 0, _interp);
                    using var roi = new Mat(resized, new Rect((w - Width) / 2, (h - Height) / 2, Width, Height));
                    roi.CopyTo(dst);
                    break;
                }
        }

        return dst;
    }

    /// <summary>Resizes and normalises into <paramref name="destination"/> (length <see cref="TensorLength"/>, CHW).</summary>
    public void Preprocess(Mat rgb, Span<float> destination)
    {
        if (destination.Length < TensorLength)
        {
            throw new ArgumentException($"destination holds {destination.Length} floats; {TensorLength} needed", nameof(destination));
        }

        var sized = rgb.Cols == Width && rgb.Rows == Height && IsSupported(rgb) && rgb.IsContinuous() ? null : Resize(rgb);
        try
        {
            Normalise(sized ?? rgb, destination);
        }
        finally
        {
            sized?.Dispose();
        }
    }

    /// <summary>Resizes and normalises into a new array.</summary>
    public float[] Preprocess(Mat rgb)
    {
        var result = new float[TensorLength];
        Preprocess(rgb, result);
        return result;
    }

    /// <summary>Decodes a file and preprocesses it (throws <see cref="ImageDecodeException"/>).</summary>
    public float[] PreprocessFile(string path, DecodeLimits? limits = null)
    {
        using var rgb = ImageDecoder.LoadRgb(path, limits);
        return Preprocess(rgb);
    }

    private static bool IsSupported(Mat image) => image.Type() == MatType.CV_8UC3 || image.Type() == MatType.CV_8UC1;

    private unsafe void Normalise(Mat sized, Span<float> dst)
    {
        var plane = Width * Height;
        var src = (byte*)sized.DataPointer;
        var channels = sized.Channels(); // 3 (RGB) or 1 (gray: every plane from the one channel)
        for (var c = 0; c < 3; c++)
        {
            // RGB source; a BGR model takes the channels in reverse.
            var srcChannel = channels == 1 ? 0 : _bgr ? 2 - c : c;
            var mul = _mul[c];
            var add = _add[c];
            var d = dst.Slice(c * plane, plane);
            for (var i = 0; i < plane; i++)
            {
                d[i] = (src[(i * channels) + srcChannel] * mul) + add;
            }
        }
    }
}
