using FmaEdge.TestSupport;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Vision.Tests;

public sealed class ImageDecoderTests : IDisposable
{
    private readonly TempFolder _tmp = new("vision");
    private static readonly string RealImage = TestPaths.SampleImages("val")[0];

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void LoadRgb_RealGrayscalePng_ReturnsThreeEqualChannels()
    {
        using var gray = Cv2.ImRead(RealImage, ImreadModes.Unchanged);
        Assert.Equal(1, gray.Channels());

        using var rgb = ImageDecoder.LoadRgb(RealImage);

        Assert.Equal(MatType.CV_8UC3, rgb.Type());
        Assert.Equal(gray.Size(), rgb.Size());
        var y = gray.Rows / 2;
        var x = gray.Cols / 3;
        var px = rgb.At<Vec3b>(y, x);
        Assert.Equal(gray.At<byte>(y, x), px.Item0);
        Assert.Equal(px.Item0, px.Item1);
        Assert.Equal(px.Item1, px.Item2);
    }

    [Fact]
    public void DecodeRgb_EveryRealValImage_Decodes()
    {
        var files = TestPaths.SampleImages("val", perLeaf: 3);
        Assert.True(files.Count >= 60);
        foreach (var f in files)
        {
            using var rgb = ImageDecoder.LoadRgb(f);
            Assert.Equal(MatType.CV_8UC3, rgb.Type());
        }
    }

    [Fact]
    public void DecodeRgb_ColourBgrPng_ConvertsToRgbOrder()
    {
        using var bgr = new Mat(32, 32, MatType.CV_8UC3, new Scalar(10, 20, 30)); // B=10 G=20 R=30
        var bytes = bgr.ImEncode(".png");

        using var rgb = ImageDecoder.DecodeRgb(bytes);

        Assert.Equal(new Vec3b(30, 20, 10), rgb.At<Vec3b>(5, 5));
    }

    [Fact]
    public void DecodeRgb_FourChannelPng_DropsAlpha()
    {
        using var bgra = new Mat(16, 16, MatType.CV_8UC4, new Scalar(1, 2, 3, 128));
        using var rgb = ImageDecoder.DecodeRgb(bgra.ImEncode(".png"));
        Assert.Equal(new Vec3b(3, 2, 1), rgb.At<Vec3b>(0, 0));
    }

    [Fact]
    public void DecodeRgb_SixteenBitTiff_ScalesTo8Bit()
    {
        using var img16 = new Mat(16, 16, MatType.CV_16UC1, new Scalar(257 * 200));
        using var rgb = ImageDecoder.DecodeRgb(img16.ImEncode(".tiff"));
        Assert.Equal(new Vec3b(200, 200, 200), rgb.At<Vec3b>(3, 3));
    }

    [Fact]
    public void DecodeRgb_FloatTiffInUnitRange_ScalesTo8Bit()
    {
        using var f = new Mat(16, 16, MatType.CV_32FC1, new Scalar(0.5));
        using var rgb = ImageDecoder.DecodeRgb(f.ImEncode(".tiff"));
        Assert.InRange(rgb.At<Vec3b>(3, 3).Item0, 127, 128);
    }

    public static TheoryData<string, string> BadInputs => new()
    {
        { "empty", DecodeFailure.Empty },
        { "random", DecodeFailure.NotAnImage },
        { "text", DecodeFailure.NotAnImage },
        { "truncated-png", DecodeFailure.Truncated },
        { "truncated-jpeg", DecodeFailure.Truncated },
        { "one-pixel", DecodeFailure.TooSmall },
        { "bomb-png", DecodeFailure.TooLarge },
        { "corrupt-png-body", DecodeFailure.Undecodable },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void LoadRgb_BadInput_ThrowsWithReason(string kind, string expectedReason)
    {
        var path = _tmp.File(kind + ".png");
        File.WriteAllBytes(path, MakeBad(kind));

        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.LoadRgb(path).Dispose());

        Assert.Equal(expectedReason, e.Reason);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
    }

    [Fact]
    public void LoadRgb_Directory_IsUnreadable()
    {
        var dir = Path.Combine(_tmp.Path, "looks-like.png");
        Directory.CreateDirectory(dir);
        Assert.Equal(DecodeFailure.Unreadable, Assert.Throws<ImageDecodeException>(() => ImageDecoder.LoadRgb(dir)).Reason);
    }

    [Fact]
    public void LoadRgb_MissingFile_IsUnreadable()
    {
        Assert.Equal(DecodeFailure.Unreadable, Assert.Throws<ImageDecodeException>(() => ImageDecoder.LoadRgb(_tmp.File("gone.png"))).Reason);
    }

    [Fact]
    public void LoadRgb_FileOverByteLimit_IsTooLarge()
    {
        var path = _tmp.File("big.png");
        File.Copy(RealImage, path);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.LoadRgb(path, new DecodeLimits { MaxBytes = 100 }));
        Assert.Equal(DecodeFailure.TooLarge, e.Reason);
    }

    private static byte[] MakeBad(string kind)
    {
        var real = File.ReadAllBytes(RealImage);
        switch (kind)
        {
            case "empty":
                return [];
            case "random":
                var r = new byte[5000];
                new Random(7).NextBytes(r);
                r[0] = 0x12;
                return r;
            case "text":
                return "this is not an image\n"u8.ToArray();
            case "truncated-png":
                return real[..(real.Length / 2)];
            case "truncated-jpeg":
                using (var m = Cv2.ImRead(RealImage))
                {
                    var jpg = m.ImEncode(".jpg");
                    return jpg[..(jpg.Length * 2 / 3)];
                }

            case "one-pixel":
                using (var one = new Mat(1, 1, MatType.CV_8UC1, Scalar.All(9)))
                {
                    return one.ImEncode(".png");
                }

            case "bomb-png":
                // A real PNG whose IHDR claims 30000 x 30000 pixels (decoding would need 2.7 GB).
                var bomb = (byte[])real.Clone();
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bomb.AsSpan(16), 30000);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bomb.AsSpan(20), 30000);
                return bomb;
            case "corrupt-png-body":
                // Header and end marker intact, image data scrambled.
                var c = (byte[])real.Clone();
                for (var i = 60; i < c.Length - 40; i++)
                {
                    c[i] ^= 0x5A;
                }

                return c;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }
}

/// <summary>Reduced JPEG decode: when it applies, and that the file's own size is kept.</summary>
public sealed class ReducedJpegDecodeRuleTests
{
    [Theory]
    [InlineData(2448, 2048, 112, 112, 8)] // 306x256 still >= 224 per side
    [InlineData(2448, 2048, 224, 224, 4)] // 612x512 >= 448
    [InlineData(1000, 1000, 224, 224, 2)] // 500 >= 448
    [InlineData(800, 800, 224, 224, 1)] // 400 < 448: full size
    [InlineData(5000, 300, 112, 112, 1)] // the short side decides
    public void JpegReduction_KeepsTwiceTheModelInputPerSide(int w, int h, int mw, int mh, int expected) =>
        Assert.Equal(expected, ImageDecoder.JpegReduction(w, h, mw, mh));

    [Fact]
    public void DecodeRgbForModel_LargeJpegReduced_PngAndSmallJpegFull_FileSizeReported()
    {
        using var gray = new Mat(1200, 1600, MatType.CV_8UC1, Scalar.All(90));
        Cv2.Circle(gray, new Point(800, 600), 300, Scalar.All(200), -1);
        var jpeg = gray.ImEncode(".jpg");
        var png = gray.ImEncode(".png");

        var reduced = ImageDecoder.DecodeRgbForModel(jpeg, 112, 112);
        using (reduced.Pixels)
        {
            Assert.Equal(4, reduced.Reduction); // 400x300 >= 224
            Assert.Equal((1600, 1200), (reduced.Width, reduced.Height));
            Assert.Equal((400, 300), (reduced.Pixels.Width, reduced.Pixels.Height));
            Assert.Equal(MatType.CV_8UC3, reduced.Pixels.Type());
            Assert.InRange(reduced.Pixels.At<Vec3b>(150, 200).Item0, 190, 210); // the circle's centre survives the DCT scaling
        }

        var full = ImageDecoder.DecodeRgbForModel(png, 112, 112);
        using (full.Pixels)
        {
            Assert.Equal(1, full.Reduction);
            Assert.Equal((1600, 1200), (full.Pixels.Width, full.Pixels.Height));
        }

        var small = ImageDecoder.DecodeRgbForModel(jpeg, 1024, 1024);
        using (small.Pixels)
        {
            Assert.Equal(1, small.Reduction);
            Assert.Equal((1600, 1200), (small.Width, small.Height));
        }
    }
}
