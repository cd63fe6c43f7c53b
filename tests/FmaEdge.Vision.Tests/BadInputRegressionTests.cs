using System.Buffers.Binary;
using System.Diagnostics;
using FmaEdge.TestSupport;
using OpenCvSharp;

namespace FmaEdge.Vision.Tests;

/// <summary>Regression tests for decoder defects the daemon's bad-input suite (tests/FmaEdge.Daemon.Tests/Reliability) found.</summary>
public sealed class BadInputRegressionTests : IDisposable
{
    private readonly TempFolder _tmp = new("vision-regress");
    private static readonly string RealImage = TestPaths.SampleImages("val")[0];

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void DecodeRgb_FloatTiffWithOneNaNPixel_IsUnsupported()
    {
        // MinMaxLoc skips NaN, so this used to decode with the NaN pixel silently turned to 0.
        using var f = new Mat(32, 32, MatType.CV_32FC1, new Scalar(0.5));
        f.Set(3, 4, float.NaN);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeRgb(f.ImEncode(".tiff")).Dispose());
        Assert.Equal(DecodeFailure.Unsupported, e.Reason);
    }

    [Fact]
    public void DecodeRgb_TiffCutInHalf_IsTruncated()
    {
        using var g = Cv2.ImRead(RealImage, ImreadModes.Unchanged);
        using var g16 = new Mat();
        g.ConvertTo(g16, MatType.CV_16UC1, 257);
        var tiff = g16.ImEncode(".tiff");
        using (var whole = ImageDecoder.DecodeRgb(tiff))
        {
            Assert.Equal(g.Size(), whole.Size()); // the complete file is fine
        }

        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeRgb(tiff[..(tiff.Length / 2)]).Dispose());
        Assert.Equal(DecodeFailure.Truncated, e.Reason);
    }

    [Fact]
    public void DecodeRgb_LosslessWebP_DecodesToTheSamePixels()
    {
        // .webp is in the folder source's default extensions; it used to be refused as "not-an-image".
        using var g = Cv2.ImRead(RealImage, ImreadModes.Unchanged);
        using var bgr = new Mat();
        Cv2.CvtColor(g, bgr, ColorConversionCodes.GRAY2BGR);
        var webp = bgr.ImEncode(".webp", new ImageEncodingParam(ImwriteFlags.WebPQuality, 101));

        var (format, w, h) = ImageHeader.Read(webp);
        Assert.Equal((ImageHeader.Format.WebP, (long)g.Cols, (long)g.Rows), (format, w, h));
        using var rgb = ImageDecoder.DecodeRgb(webp);
        using var expected = ImageDecoder.LoadRgb(RealImage);
        Assert.Equal(0, Cv2.Norm(rgb, expected, NormTypes.INF));

        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeRgb(webp[..(webp.Length / 2)]).Dispose());
        Assert.Equal(DecodeFailure.Truncated, e.Reason);
    }

    [Fact]
    public void DecodeRgb_PngHeaderDeclaringZeroByZero_IsTooSmall()
    {
        var png = File.ReadAllBytes(RealImage);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 0);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 0);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeRgb(png).Dispose());
        Assert.Equal(DecodeFailure.TooSmall, e.Reason);
    }

    [Fact]
    public async Task LoadRgb_NamedPipe_RefusedWithoutBlocking()
    {
        // Opening a FIFO for reading blocks until a writer appears; the decoder must never open one.
        var fifo = _tmp.File("pipe.png");
        using (var p = Process.Start("mkfifo", [fifo]))
        {
            await p.WaitForExitAsync();
            Assert.Equal(0, p.ExitCode);
        }

        var load = Task.Run(() => ImageDecoder.LoadRgb(fifo).Dispose());
        var e = await Assert.ThrowsAsync<ImageDecodeException>(() => load.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(DecodeFailure.Empty, e.Reason);
    }
}
