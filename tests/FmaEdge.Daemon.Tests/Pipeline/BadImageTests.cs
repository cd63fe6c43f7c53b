using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Pipeline;

public sealed class BadImageTests
{
    [Fact]
    public async Task Run_BadImages_SetAsideWithReasonAndDaemonKeepsServing()
    {
        using var tmp = new TempFolder("bad");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        var good = TestPaths.SampleImages("val", perLeaf: 1).Take(5).ToList();
        var png = await File.ReadAllBytesAsync(good[0]);
        var rng = new Random(7);
        var random = new byte[4096];
        rng.NextBytes(random);
        using var tiny = new Mat(1, 1, MatType.CV_8UC3, Scalar.All(128));
        var bad = new Dictionary<string, byte[]>
        {
            ["empty.png"] = [],
            ["truncated.png"] = png[..(png.Length / 2)],
            ["random.png"] = random,
            ["text.jpg"] = "this is not an image\n"u8.ToArray(),
            ["one-pixel.png"] = tiny.ImEncode(".png"),
        };
        Directory.CreateDirectory(Path.Combine(d.Inbox, "a-directory.png")); // set aside as not-a-file, crashes nothing

        d.Drop(good.Take(2));
        foreach (var (name, bytes) in bad)
        {
            var part = Path.Combine(d.Inbox, name + ".part");
            await File.WriteAllBytesAsync(part, bytes);
            File.Move(part, Path.Combine(d.Inbox, name));
        }

        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.Failed == bad.Count + 1 && d.Results().Count == 2, "bad images set aside");

        // Keeps serving after the bad ones.
        d.Drop(good.Skip(2));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 5, "good images after the bad ones");

        foreach (var name in bad.Keys)
        {
            Assert.True(File.Exists(Path.Combine(d.Failed, name)), name + " moved to failed/");
            var reason = await File.ReadAllTextAsync(Path.Combine(d.Failed, name + ".reason.txt"));
            Assert.False(string.IsNullOrWhiteSpace(reason), name + " has a reason");
        }

        var events = d.Events("bad_image");
        Assert.Equal(bad.Count + 1, events.Count);
        string ReasonOf(string name) => events.Single(e => e.GetProperty("subject").GetString()!.EndsWith(name, StringComparison.Ordinal)).GetProperty("reason").GetString()!;
        Assert.Equal("empty", ReasonOf("empty.png"));
        Assert.Equal("too-small", ReasonOf("one-pixel.png"));
        Assert.Contains(ReasonOf("truncated.png"), new[] { "truncated", "undecodable" });
        Assert.Contains(ReasonOf("random.png"), new[] { "not-an-image", "undecodable", "unsupported" });
        Assert.Contains(ReasonOf("text.jpg"), new[] { "not-an-image", "undecodable", "unsupported" });
        Assert.Equal("not-a-file", ReasonOf("a-directory.png"));
        Assert.True(Directory.Exists(Path.Combine(d.Failed, "a-directory.png")));
        Assert.Equal(bad.Count + 1, d.Status.Snapshot().Counts.Failed);
        Assert.Equal(bad.Count + 1, d.Status.Snapshot().Sources[0].Errors);
    }
}
