using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Sources;

[Collection(CaptureCollection.Name)]
public sealed class CameraSourceTests
{
    [Fact]
    public async Task Camera_VideoFileThatEnds_StreamsDropsOldestAndReconnects()
    {
        using var tmp = new TempFolder("camera");
        var video = Path.Combine(tmp.Path, "line.avi");
        using (var writer = new VideoWriter(video, FourCC.MJPG, 25, new Size(128, 128)))
        {
            Assert.True(writer.IsOpened(), "OpenCV can write MJPG video");
            foreach (var img in TestPaths.SampleImages("val", perLeaf: 1).Take(20))
            {
                using var src = Cv2.ImRead(img);
                using var frame = src.Resize(new Size(128, 128));
                writer.Write(frame);
            }
        }

        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Sources:1:Id"] = "cam1";
            s["FmaEdge:Sources:1:Type"] = "camera";
            s["FmaEdge:Sources:1:Uri"] = video;
            s["FmaEdge:Sources:1:FpsLimit"] = "0";        // as fast as the file decodes: overload on purpose
            s["FmaEdge:Sources:1:QueueCapacity"] = "2";
            s["FmaEdge:Sources:1:ReconnectMinMs"] = "100";
            s["FmaEdge:Sources:1:ReconnectMaxMs"] = "200";
        });

        // The file ends after 20 frames: the source must notice, reconnect and stream again.
        await DaemonHarness.WaitUntilAsync(() => d.Status.Snapshot().Sources[1].Frames > 45, "frames across reconnects");
        await DaemonHarness.WaitUntilAsync(() => d.Results("cam1").Count >= 5, "camera results");
        var cam = d.Status.Snapshot().Sources[1];
        Assert.Equal("camera", cam.Type);
        Assert.True(cam.Errors >= 2, $"reconnects counted ({cam.Errors})");
        Assert.True(cam.Dropped > 0, "overload drops counted");
        Assert.True(cam.Frames >= d.Results("cam1").Count + cam.Dropped - cam.Pending - 8, "frames = published + dropped + queued (+ in flight)");
        var r = d.Results("cam1")[0];
        Assert.Equal(128, r.GetProperty("width").GetInt32());
        Assert.StartsWith("cam1-", r.GetProperty("imageId").GetString(), StringComparison.Ordinal);
        var ups = d.Events("source_up").Count;
        var downs = d.Events("source_down").Count;
        Assert.True(ups >= 2 && ups - downs is 0 or 1, $"each loss is a source-down paired with a later source-up ({ups} up, {downs} down)");
    }

    [Fact]
    public async Task Camera_TriggerSampling_OneFramePerSocketTriggerOrFileTouch()
    {
        using var tmp = new TempFolder("trigger");
        var video = Path.Combine(tmp.Path, "line.avi");
        using (var writer = new VideoWriter(video, FourCC.MJPG, 25, new Size(96, 96)))
        {
            foreach (var img in TestPaths.SampleImages("val", perLeaf: 2).Take(40))
            {
                using var src = Cv2.ImRead(img);
                using var frame = src.Resize(new Size(96, 96));
                writer.Write(frame);
            }
        }

        var triggerFile = Path.Combine(tmp.Path, "trigger");
        await File.WriteAllTextAsync(triggerFile, "");
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s =>
        {
            s["FmaEdge:Sources:1:Id"] = "cam1";
            s["FmaEdge:Sources:1:Type"] = "camera";
            s["FmaEdge:Sources:1:Uri"] = video;
            s["FmaEdge:Sources:1:Sampling"] = "trigger";
            s["FmaEdge:Sources:1:TriggerFile"] = triggerFile;
            s["FmaEdge:Sources:1:ReconnectMinMs"] = "50";
            s["FmaEdge:Sources:1:ReconnectMaxMs"] = "100";
        });

        await Task.Delay(1000);
        Assert.Empty(d.Results("cam1")); // streaming, but nothing is taken without a trigger

        var reply = await FmaEdge.Daemon.Status.StatusClient.RequestAsync(d.Socket, "trigger cam1", CancellationToken.None);
        Assert.Contains("\"triggered\":true", reply, StringComparison.Ordinal);
        await DaemonHarness.WaitUntilAsync(() => d.Results("cam1").Count == 1, "one frame for the socket trigger");

        File.SetLastWriteTimeUtc(triggerFile, DateTime.UtcNow.AddSeconds(5));
        await DaemonHarness.WaitUntilAsync(() => d.Results("cam1").Count == 2, "one frame for the file touch");
        await Task.Delay(500);
        Assert.Equal(2, d.Results("cam1").Count);

        var unknown = await FmaEdge.Daemon.Status.StatusClient.RequestAsync(d.Socket, "trigger nosuch", CancellationToken.None);
        Assert.Contains("\"triggered\":false", unknown, StringComparison.Ordinal);
    }
}
