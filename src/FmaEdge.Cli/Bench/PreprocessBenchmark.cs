using System.Diagnostics;
using FmaEdge.Core.Contract;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Cli.Bench;

/// <summary>Decode + preprocess cost per image for a small (200x200, the NEU steel images' size) and a large
/// (2448x2048, a 5-megapixel line camera) image, each made from a real image by resizing and encoded as PNG (8-bit
/// grayscale, like the defect set) and JPEG (quality 90, as cameras send). Runs the daemon's own code
/// on one thread, as the pipeline calls it: <see cref="ImageDecoder.Decode"/> with a reduced decode of large JPEGs and
/// gray kept gray (the defaults), then the model's <see cref="ImagePreprocessor"/>. Stateless.</summary>
public static class PreprocessBenchmark
{
    /// <summary>The generated image kinds: name, width, height.</summary>
    public static readonly IReadOnlyList<(string Name, int Width, int Height)> Sizes = [("small", 200, 200), ("large", 2448, 2048)];

    /// <summary>Measures every size in PNG and JPEG, <paramref name="repeats"/> times each after one warm-up.</summary>
    public static IReadOnlyList<PreprocessResult> Run(ValidatedModel model, string realImage, int repeats, CancellationToken ct)
    {
        var pre = ImagePreprocessor.For(model.Manifest);
        var tensor = new float[pre.TensorLength];
        using var source = Cv2.ImRead(realImage, ImreadModes.Grayscale);
        if (source.Empty())
        {
            throw new InvalidDataException($"cannot read {realImage} as an image");
        }

        var results = new List<PreprocessResult>();
        foreach (var (name, w, h) in Sizes)
        {
            using var sized = new Mat();
            Cv2.Resize(source, sized, new Size(w, h), 0, 0, InterpolationFlags.Cubic);
            foreach (var (format, ext, prms) in new (string, string, ImageEncodingParam[])[]
            {
                ("png", ".png", []),
                ("jpeg", ".jpg", [new ImageEncodingParam(ImwriteFlags.JpegQuality, 90)]),
            })
            {
                Cv2.ImEncode(ext, sized, out var bytes, prms);
                var decode = new List<double>(repeats);
                var prep = new List<double>(repeats);
                var total = new List<double>(repeats);
                for (var i = -1; i < repeats; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    var t0 = Stopwatch.GetTimestamp();
                    using var pixels = ImageDecoder.Decode(bytes, reduceFor: (pre.Width, pre.Height), keepGray: true).Pixels;
                    var t1 = Stopwatch.GetTimestamp();
                    pre.Preprocess(pixels, tensor);
                    var t2 = Stopwatch.GetTimestamp();
                    if (i < 0)
                    {
                        continue; // warm-up: first use of the codec
                    }

                    decode.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                    prep.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                    total.Add(Stopwatch.GetElapsedTime(t0, t2).TotalMilliseconds);
                }

                results.Add(new PreprocessResult(name, w, h, format, bytes.LongLength, repeats, StageStats.Of(decode), StageStats.Of(prep), StageStats.Of(total)));
            }
        }

        return results;
    }
}
