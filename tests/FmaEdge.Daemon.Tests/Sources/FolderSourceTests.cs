using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Sources;

public sealed class FolderSourceTests
{
    [Fact]
    public async Task Run_PreexistingAndNewFiles_EachPublishedOnceAndMovedToDone()
    {
        using var tmp = new TempFolder("folder");
        var images = TestPaths.SampleImages("val", perLeaf: 1);
        Directory.CreateDirectory(Path.Combine(tmp.Path, "inbox"));
        foreach (var img in images.Take(5))
        {
            File.Copy(img, Path.Combine(tmp.Path, "inbox", "pre-" + Path.GetFileName(img)));
        }

        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        d.Drop(images.Skip(5).Take(5), "new-");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count >= 10 && d.Pipeline.InFlight == 0, "10 results");
        await Task.Delay(1500); // a rescan later: still nothing reported twice

        var results = d.Results();
        Assert.Equal(10, results.Count);
        var ids = results.Select(r => r.GetProperty("imageId").GetString()!).Order().ToList();
        var expected = images.Take(5).Select(i => "pre-" + Path.GetFileName(i)).Concat(images.Skip(5).Take(5).Select(i => "new-" + Path.GetFileName(i))).Order().ToList();
        Assert.Equal(expected, ids);
        Assert.Equal(expected, Directory.GetFiles(d.Done).Select(f => Path.GetFileName(f)).Order().ToList());
        Assert.Empty(Directory.GetFiles(d.Inbox));
        foreach (var r in results)
        {
            Assert.Equal(3, r.GetProperty("prediction").GetProperty("levels").GetArrayLength());
            Assert.Equal(64, r.GetProperty("sha256").GetString()!.Length);
        }
    }
}
