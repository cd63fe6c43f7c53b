using FmaEdge.Core.Contract;
using FmaEdge.TestSupport;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Vision.Tests;

public sealed class ImagePreprocessorTests
{
    private static readonly PreprocessSpec Spec = new();

    [Fact]
    public void Preprocess_RealImage_MatchesIndependentComputation()
    {
        var file = TestPaths.SampleImages("val")[3];
        var pre = new ImagePreprocessor(Spec, 112, 96);
        using var rgb = ImageDecoder.LoadRgb(file);

        var tensor = pre.Preprocess(rgb);

        // Independent route: OpenCV resize, then the normalisation formula per pixel via At<>.
        using var sized = new Mat();
        Cv2.Resize(rgb, sized, new Size(112, 96), 0, 0, InterpolationFlags.Area);
        Assert.Equal(3 * 112 * 96, tensor.Length);
        var rng = new Random(1);
        for (var k = 0; k < 500; k++)
        {
            var y = rng.Next(96);
            var x = rng.Next(112);
            var c = rng.Next(3);
            var px = sized.At<Vec3b>(y, x);
            var v = c switch { 0 => px.Item0, 1 => px.Item1, _ => px.Item2 };
            var expected = ((v / 255.0) - Spec.Mean[c]) / Spec.Std[c];
            Assert.Equal(expected, tensor[(c * 96 * 112) + (y * 112) + x], 4);
        }
    }

    [Fact]
    public void Preprocess_BgrChannelOrder_ReversesChannels()
    {
        using var rgb = new Mat(8, 8, MatType.CV_8UC3, new Scalar(255, 0, 0)); // R=255 in RGB order
        var unit = Spec with { Mean = [0, 0, 0], Std = [1, 1, 1] };
        var rgbT = new ImagePreprocessor(unit, 8, 8).Preprocess(rgb);
        var bgrT = new ImagePreprocessor(unit with { ChannelOrder = "BGR" }, 8, 8).Preprocess(rgb);
        Assert.Equal(1f, rgbT[0]);
        Assert.Equal(0f, rgbT[128]);
        Assert.Equal(0f, bgrT[0]);
        Assert.Equal(1f, bgrT[128]);
    }

    [Fact]
    public void Resize_Letterbox_KeepsAspectAndPads()
    {
        using var wide = new Mat(50, 100, MatType.CV_8UC3, Scalar.All(200));
        var pre = new ImagePreprocessor(Spec with { Resize = ResizeModes.Letterbox, PadValue = 0 }, 64, 64);
        using var sized = pre.Resize(wide);
        Assert.Equal(new Size(64, 64), sized.Size());
        Assert.Equal(0, sized.At<Vec3b>(2, 32).Item0);   // top band is padding
        Assert.Equal(200, sized.At<Vec3b>(32, 32).Item0); // centre is image
    }

    [Fact]
    public void Resize_CenterCrop_FillsTargetWithoutPadding()
    {
        using var tall = new Mat(200, 100, MatType.CV_8UC3, Scalar.All(50));
        Cv2.Rectangle(tall, new Rect(0, 0, 100, 20), Scalar.All(255), -1); // a band the crop must remove
        var pre = new ImagePreprocessor(Spec with { Resize = ResizeModes.CenterCrop }, 64, 64);
        using var sized = pre.Resize(tall);
        Assert.Equal(new Size(64, 64), sized.Size());
        Assert.Equal(50, sized.At<Vec3b>(0, 32).Item0);
    }

    [Fact]
    public void Preprocess_TooSmallDestination_Throws()
    {
        using var rgb = new Mat(8, 8, MatType.CV_8UC3, Scalar.All(1));
        var pre = new ImagePreprocessor(Spec, 8, 8);
        Assert.Throws<ArgumentException>(() => pre.Preprocess(rgb, new float[10]));
    }
}
