using System.Text;
using FmaEdge.Daemon.Files;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Files;

/// <summary>Setting a file aside with its reason: the one implementation behind done/, failed/ and models/rejected/.</summary>
public sealed class SetAsideTests : IDisposable
{
    private readonly TempFolder _tmp = new("set-aside");

    public void Dispose() => _tmp.Dispose();

    private string Write(string name, string text = "x")
    {
        var path = Path.Combine(_tmp.Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task MoveAsync_WithReason_FileMovedAndReasonBesideIt()
    {
        var path = Write("bad.png", "not a png");
        var aside = Path.Combine(_tmp.Path, "failed");

        var target = await SetAside.MoveAsync(path, aside, "not-an-image: no decoder recognised it", CancellationToken.None);

        Assert.Equal(Path.Combine(aside, "bad.png"), target);
        Assert.False(File.Exists(path));
        Assert.Equal("not a png", File.ReadAllText(target));
        Assert.Equal("not-an-image: no decoder recognised it\n", File.ReadAllText(target + ".reason.txt"));
    }

    [Fact]
    public async Task MoveAsync_NameTaken_NumberedNamesAndNoReasonWhenNoneIsGiven()
    {
        var dir = Path.Combine(_tmp.Path, "done");
        var first = await SetAside.MoveAsync(Write("a.png", "1"), dir, reason: null, CancellationToken.None);
        var second = await SetAside.MoveAsync(Write("a.png", "2"), dir, reason: null, CancellationToken.None);
        var third = await SetAside.MoveAsync(Write("a.png", "3"), dir, reason: null, CancellationToken.None);

        Assert.Equal(["a.png", "a.1.png", "a.2.png"], new[] { first, second, third }.Select(Path.GetFileName));
        Assert.Equal(["1", "2", "3"], new[] { first, second, third }.Select(File.ReadAllText));
        Assert.Empty(Directory.GetFiles(dir, "*.reason.txt"));
    }

    [Fact]
    public async Task MoveAsync_NameAtTheFileNameLimit_ReasonNameShortenedAndFullNameInside()
    {
        var name = new string('é', 125) + ".png"; // 254 bytes of UTF-8: fits, its ".reason.txt" would not
        var target = await SetAside.MoveAsync(Write(name), Path.Combine(_tmp.Path, "failed"), "empty", CancellationToken.None);

        var reason = SetAside.ReasonPath(target);
        Assert.True(Encoding.UTF8.GetByteCount(Path.GetFileName(reason)) <= 255);
        Assert.EndsWith(".reason.txt", reason, StringComparison.Ordinal);
        Assert.Equal($"empty\nfile: {name}\n", File.ReadAllText(reason));
    }

    [Fact]
    public async Task MoveAsync_SymbolicLink_TheLinkMovesNotItsTarget()
    {
        var realFile = Write("real.bin", "data");
        var link = Path.Combine(_tmp.Path, "link.png");
        File.CreateSymbolicLink(link, realFile);

        var target = await SetAside.MoveAsync(link, Path.Combine(_tmp.Path, "failed"), "a link", CancellationToken.None);

        Assert.Equal(realFile, new FileInfo(target).LinkTarget);
        Assert.True(File.Exists(realFile));
        Assert.False(File.Exists(link) || new FileInfo(link).LinkTarget is not null);
    }

    [Fact]
    public async Task MoveAsync_DestinationUnusable_ThrowsAndLeavesTheOriginal()
    {
        var path = Write("a.png");
        var blocked = Write("not-a-dir"); // a file where the folder should be

        await Assert.ThrowsAsync<IOException>(() => SetAside.MoveAsync(path, blocked, "x", CancellationToken.None));
        Assert.True(File.Exists(path));
    }
}
