using FmaEdge.Core.Contract;
using FmaEdge.TestSupport;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Vision.Tests;

/// <summary>The daemon keeps gray images as one channel (<c>ImageDecoder.Decode(keepGray: true)</c>); the trainer and the
/// evaluator decode them to RGB. Both must give the model the same tensor, to the bit, or the daemon would see other inputs
/// than the model was trained and calibrated on.</summary>
public sealed class GrayPixelsTests
{
    public static TheoryData<string, string> ResizeAndInterpolation()
    {
        var data = new TheoryData<string, string>();
        foreach (var resize in new[] { ResizeModes.Stretch, ResizeModes.Letterbox, ResizeModes.CenterCrop })
        {
            foreach (var interpolation in new[] { "linear", "area", "cubic", "nearest" })
            {
                data.Add(resize, interpolation);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ResizeAndInterpolation))]
    public void Preprocess_RealGrayImagesKeptGray_GiveTheTensorsOfTheirRgbCopies(string resize, string interpolation)
    {
        // Every leaf's first three val images: 48-200 px gray PNGs, so the 128x112 input both enlarges and shrinks them.
        // (Cubic passes because the preprocessor resizes a gray image's RGB copy for it: OpenCV's one-channel cubic
        // resize rounds differently, which this test found.)
        var files = TestPaths.SampleImages("val", perLeaf: 3);
        var pre = new ImagePreprocessor(new PreprocessSpec { Resize = resize, Interpolation = interpolation, PadValue = 114 }, 128, 112);
        var compared = 0;
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(file);
            using var rgb = ImageDecoder.DecodeRgb(bytes);
            var kept = ImageDecoder.Decode(bytes, keepGray: true);
            using var gray = kept.Pixels;
            Assert.Equal(MatType.CV_8UC1, gray.Type());
            Assert.Equal((rgb.Width, rgb.Height), (kept.Width, kept.Height));

            Assert.Equal(pre.Preprocess(rgb), pre.Preprocess(gray));
            compared++;
        }

        Assert.True(compared >= 40, $"only {compared} gray images compared");
    }

    [Fact]
    public void Decode_LargeGrayJpegKeptGray_DecodesReducedToOneChannel_WithTheTensorOfTheColourDecode()
    {
        // A camera-sized mono JPEG made from a real defect image: libjpeg's reduced gray decode must equal its reduced
        // colour decode channel for channel, so the tensor is the same either way.
        using var source = Cv2.ImRead(TestPaths.SampleImages("val")[0], ImreadModes.Grayscale);
        using var large = new Mat();
        Cv2.Resize(source, large, new Size(2448, 2048), 0, 0, InterpolationFlags.Cubic);
        var jpeg = large.ImEncode(".jpg", new ImageEncodingParam(ImwriteFlags.JpegQuality, 90));
        Assert.Equal(1, ImageHeader.JpegComponents(jpeg));

        var colour = ImageDecoder.Decode(jpeg, reduceFor: (128, 128));
        var gray = ImageDecoder.Decode(jpeg, reduceFor: (128, 128), keepGray: true);
        using (colour.Pixels)
        using (gray.Pixels)
        {
            Assert.Equal(8, gray.Reduction);
            Assert.Equal(colour.Reduction, gray.Reduction);
            Assert.Equal(MatType.CV_8UC1, gray.Pixels.Type());
            Assert.Equal(MatType.CV_8UC3, colour.Pixels.Type());
            var pre = new ImagePreprocessor(new PreprocessSpec { Interpolation = "linear" }, 128, 128);
            Assert.Equal(pre.Preprocess(colour.Pixels), pre.Preprocess(gray.Pixels));
        }
    }

    [Fact]
    public void Decode_ColourImageKeptGray_StaysRgb()
    {
        using var bgr = new Mat(40, 60, MatType.CV_8UC3, new Scalar(10, 20, 30));
        var jpeg = bgr.ImEncode(".jpg");
        Assert.Equal(3, ImageHeader.JpegComponents(jpeg));
        Assert.Equal(0, ImageHeader.JpegComponents(bgr.ImEncode(".png")));

        foreach (var bytes in new[] { jpeg, bgr.ImEncode(".png") })
        {
            using var pixels = ImageDecoder.Decode(bytes, keepGray: true).Pixels;
            Assert.Equal(MatType.CV_8UC3, pixels.Type());
            Assert.InRange(pixels.At<Vec3b>(20, 30).Item0, 25, 35); // RGB order: red (30) first
        }
    }

    [Fact]
    public void Decode_GrayWithAlphaKeptGray_KeepsTheGrayPlane()
    {
        using var gray = new Mat(20, 20, MatType.CV_8UC1, Scalar.All(77));
        using var alpha = new Mat(20, 20, MatType.CV_8UC1, Scalar.All(255));
        using var ga = new Mat();
        Cv2.Merge([gray, alpha], ga);
        using var pixels = ImageDecoder.ToPixels(ga, keepGray: true); // as a gray + alpha TIFF or camera frame decodes
        Assert.Equal(MatType.CV_8UC1, pixels.Type());
        Assert.Equal(77, pixels.At<byte>(10, 10));
    }

    [Fact]
    public void Preprocess_TwoOrFourChannelMat_IsRefusedWithItsType()
    {
        using var bgra = new Mat(8, 8, MatType.CV_8UC4, Scalar.All(1));
        var e = Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessSpec(), 16, 16).Preprocess(bgra));
        Assert.Contains("RGB or gray", e.Message, StringComparison.Ordinal);
    }
}
