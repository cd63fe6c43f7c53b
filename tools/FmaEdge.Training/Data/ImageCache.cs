using System.Collections.Concurrent;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Training.Data;

/// <summary>An image that could not be used, and why (ImageDecodeException.Reason).</summary>
public sealed record SkippedImage(string Path, string Reason, string Message);

/// <summary>Every image of a dataset decoded once and resized to the model size with the shared
/// <see cref="ImagePreprocessor.Resize"/> (the daemon's own code), kept as 8-bit RGB. Augmentation (flips,
/// 90-degree turns, brightness/contrast) commutes with that resize for square inputs, so augmenting the cached
/// image is equivalent to augmenting before it, without decoding PNGs every epoch. Unreadable images are
/// listed in <see cref="Skipped"/> and left out. Read-only after construction: thread-safe to read.</summary>
public sealed class ImageCache : IDisposable
{
    private readonly Mat[] _images;

    private ImageCache(Mat[] images, int[] leaves, IReadOnlyList<string> paths, IReadOnlyList<SkippedImage> skipped)
    {
        _images = images;
        Leaves = leaves;
        Paths = paths;
        Skipped = skipped;
    }

    /// <summary>Leaf index per cached image.</summary>
    public int[] Leaves { get; }

    /// <summary>Source path per cached image.</summary>
    public IReadOnlyList<string> Paths { get; }

    public IReadOnlyList<SkippedImage> Skipped { get; }

    public int Count => _images.Length;

    /// <summary>The resized RGB image (do not modify or dispose).</summary>
    public Mat this[int i] => _images[i];

    /// <summary>Decodes and resizes every image on <paramref name="threads"/> threads.</summary>
    public static ImageCache Build(LabeledDataset data, ImagePreprocessor pre, int threads, CancellationToken ct, IProgress<int>? progress = null)
    {
        var mats = new Mat?[data.Images.Count];
        var skipped = new ConcurrentBag<(int Index, SkippedImage Item)>();
        var done = 0;
        Parallel.For(0, data.Images.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads), CancellationToken = ct }, i =>
        {
            var path = data.Images[i].Path;
            try
            {
                using var rgb = ImageDecoder.LoadRgb(path);
                mats[i] = pre.Resize(rgb);
            }
            catch (ImageDecodeException e)
            {
                skipped.Add((i, new SkippedImage(path, e.Reason, e.Message)));
            }
            catch (OpenCVException e)
            {
                skipped.Add((i, new SkippedImage(path, "opencv", e.Message)));
            }

            var n = Interlocked.Increment(ref done);
            if (n % 256 == 0)
            {
                progress?.Report(n);
            }
        });

        var keep = Enumerable.Range(0, mats.Length).Where(i => mats[i] is not null).ToArray();
        return new ImageCache(
            keep.Select(i => mats[i]!).ToArray(),
            keep.Select(i => data.Images[i].Leaf).ToArray(),
            keep.Select(i => data.Images[i].Path).ToList(),
            skipped.OrderBy(s => s.Index).Select(s => s.Item).ToList());
    }

    public void Dispose()
    {
        foreach (var m in _images)
        {
            m.Dispose();
        }
    }
}
