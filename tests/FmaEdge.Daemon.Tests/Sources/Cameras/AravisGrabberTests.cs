using System.Globalization;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Sources.Cameras;
using FmaEdge.Daemon.Sources.Cameras.Aravis;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Sources.Cameras;

/// <summary>The Aravis grabber alone against Aravis's GigE Vision camera simulator on loopback: what the camera really
/// applied (read back from it) and how its pixel formats become pipeline frames. The simulator offers Mono8, Mono16,
/// BayerGR8/RG8/GB8/BG8 and RGB8 (no Mono12).</summary>
[Collection(FakeGigECameraCollection.Name)]
public sealed class AravisGrabberTests
{
    [Fact]
    public void Aravis_RegionExposureGainPacketSize_ReadBackFromTheCamera()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        using var grabber = Open(cam, g =>
        {
            g.Region = "16,8,256,128";
            g.ExposureUs = 2500;
            g.Gain = 3;
            g.PacketSize = 1200;
        });

        Assert.Empty(grabber.Problems);
        Assert.Equal("16", grabber.ReadFeature("OffsetX"));
        Assert.Equal("8", grabber.ReadFeature("OffsetY"));
        Assert.Equal("256", grabber.ReadFeature("Width"));
        Assert.Equal("128", grabber.ReadFeature("Height"));
        Assert.Equal(2500, Number(grabber.ReadFeature("ExposureTime") ?? grabber.ReadFeature("ExposureTimeAbs")));
        Assert.Equal(3, Number(grabber.ReadFeature("Gain") ?? grabber.ReadFeature("GainRaw")));
        Assert.Equal(1200, Number(grabber.ReadFeature("GevSCPSPacketSize")));

        // The frames themselves have the region's size.
        using var frame = new Mat();
        Assert.NotNull(grabber.Read(frame, CancellationToken.None));
        Assert.Equal(new Size(256, 128), frame.Size());
    }

    [Fact]
    public void Aravis_Mono16_ScaledTo8BitExactlyAsTheTrainerReadsA16BitImage()
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        using var grabber = Open(cam, g => g.PixelFormat = "Mono16");
        Assert.Equal("Mono16", grabber.Info.PixelFormat);

        using var frame = new Mat();
        Assert.NotNull(grabber.Read(frame, CancellationToken.None));
        Assert.Equal(MatType.CV_16UC1, frame.Type());
        frame.MinMaxLoc(out double _, out double max);
        Assert.True(max > 255, $"the frame carries 16-bit values (max {max})");

        // The pipeline's path for a camera frame ...
        using var fromCamera = ImageDecoder.ToRgb8(frame);
        // ... and the trainer's path for the same pixels saved as a 16-bit PNG.
        Cv2.ImEncode(".png", frame, out var png);
        using var fromFile = ImageDecoder.DecodeRgb(png);
        Assert.Equal(MatType.CV_8UC3, fromCamera.Type());
        using var diff = new Mat();
        Cv2.Absdiff(fromCamera, fromFile, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff.Reshape(1)));

        // value / 257, rounded, at the brightest pixel.
        frame.MinMaxLoc(out _, out _, out _, out Point at);
        Assert.Equal((int)Math.Round(frame.At<ushort>(at.Y, at.X) / 257.0), fromCamera.At<Vec3b>(at.Y, at.X).Item0);
    }

    [Theory]
    [InlineData("BayerRG8")]
    [InlineData("BayerGR8")]
    public void Aravis_Bayer_DemosaicedToColour(string format)
    {
        using var cam = new FakeGigECamera();
        cam.Start();
        using var grabber = Open(cam, g => g.PixelFormat = format);
        Assert.Equal(format, grabber.Info.PixelFormat);

        using var frame = new Mat();
        Assert.NotNull(grabber.Read(frame, CancellationToken.None));
        Assert.Equal(MatType.CV_8UC3, frame.Type());
        Assert.Equal(new Size(grabber.Info.Width, grabber.Info.Height), frame.Size());
        frame.MinMaxLoc(out double _, out double max);
        Assert.True(max > 0, "the demosaiced frame is not black");
    }

    private static AravisGrabber Open(FakeGigECamera cam, Action<GenICamOptions> configure)
    {
        var options = new SourceOptions { Id = "cam1", Type = "camera", Backend = "aravis", Uri = cam.Serial };
        configure(options.GenICam);
        var grabber = new AravisGrabber(options, TimeSpan.FromSeconds(5));
        // The simulator needs a moment to answer discovery after it starts: retry for up to 10 s.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                grabber.Open(CancellationToken.None);
                return grabber;
            }
            catch (CameraException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
        }
    }

    private static double Number(string? value) =>
        double.Parse(value ?? throw new Xunit.Sdk.XunitException("feature not readable"), CultureInfo.InvariantCulture);
}
