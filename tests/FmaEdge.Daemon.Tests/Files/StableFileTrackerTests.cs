using FmaEdge.Daemon.Files;
using FmaEdge.TestSupport;
using Microsoft.Extensions.Time.Testing;

namespace FmaEdge.Daemon.Tests.Files;

/// <summary>The one rule for "a file is complete", on a fake clock: the folder source and the model manager both use it.</summary>
public sealed class StableFileTrackerTests : IDisposable
{
    private readonly TempFolder _tmp = new("tracker");
    private readonly FakeTimeProvider _clock = new();

    public void Dispose() => _tmp.Dispose();

    private string Write(string name, int bytes)
    {
        var path = Path.Combine(_tmp.Path, name);
        File.WriteAllBytes(path, new byte[bytes]);
        return path;
    }

    [Fact]
    public void TakeComplete_FileStillGrowing_TakenOnlyOnceUnchangedForTheWholeWindowOfItsClock()
    {
        using var tracker = new StableFileTracker(TimeSpan.FromMilliseconds(200), seenMeansComplete: false, _clock);
        var path = Write("a.png", 100);
        tracker.Seen(path, renamedIn: false);

        Assert.Empty(tracker.TakeComplete()); // first look: the window starts now
        _clock.Advance(TimeSpan.FromMilliseconds(150));
        Assert.Empty(tracker.TakeComplete());
        using (var fs = new FileStream(path, FileMode.Append))
        {
            fs.Write(new byte[50]); // grew: the window starts again
        }

        Assert.Empty(tracker.TakeComplete());
        _clock.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Empty(tracker.TakeComplete());
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        var (taken, signature) = Assert.Single(tracker.TakeComplete());
        Assert.Equal(path, taken);
        Assert.Equal(StableFileTracker.SignatureOf(path), signature);
        Assert.StartsWith("150|", signature, StringComparison.Ordinal);
        Assert.Equal(0, tracker.Count);
        Assert.Empty(tracker.TakeComplete()); // taken once
    }

    [Fact]
    public void TakeComplete_RenamedInOrWritersAlwaysRename_TakenAtFirstLook()
    {
        using var stable = new StableFileTracker(TimeSpan.FromSeconds(10), seenMeansComplete: false, _clock);
        var renamed = Write("renamed.png", 10);
        var written = Write("written.png", 10);
        stable.Seen(written, renamedIn: false);
        stable.Seen(renamed, renamedIn: true);
        Assert.Equal([renamed], stable.TakeComplete().Select(f => f.Path));
        Assert.Equal(1, stable.Count); // the other waits for its window

        using var renameOnly = new StableFileTracker(TimeSpan.FromSeconds(10), seenMeansComplete: true, _clock);
        renameOnly.Seen(written, renamedIn: false);
        Assert.Equal([written], renameOnly.TakeComplete().Select(f => f.Path));
    }

    [Fact]
    public void TakeComplete_SeveralReady_InArrivalOrderNotNameOrder()
    {
        using var tracker = new StableFileTracker(TimeSpan.Zero, seenMeansComplete: false, _clock);
        var (b, a, c) = (Write("b.png", 1), Write("a.png", 1), Write("c.png", 1));
        tracker.Seen(b, renamedIn: false);
        tracker.Seen(a, renamedIn: false);
        tracker.Seen(c, renamedIn: false);
        tracker.Seen(b, renamedIn: true); // seen again: keeps its place
        Assert.Equal([b, a, c], tracker.TakeComplete().Select(f => f.Path));
    }

    [Fact]
    public void TakeComplete_GoneOrSkipped_DroppedWithoutBeingTaken()
    {
        using var tracker = new StableFileTracker(TimeSpan.Zero, seenMeansComplete: false, _clock);
        var (gone, handled, fresh) = (Write("gone.png", 1), Write("handled.png", 7), Write("fresh.png", 1));
        foreach (var p in new[] { gone, handled, fresh })
        {
            tracker.Seen(p, renamedIn: false);
        }

        File.Delete(gone);
        var handledSignature = StableFileTracker.SignatureOf(handled);
        Assert.Equal([fresh], tracker.TakeComplete((p, sig) => p == handled && sig == handledSignature).Select(f => f.Path));
        Assert.Equal(0, tracker.Count);
    }

    [Fact]
    public async Task Watch_FileRenamedIntoTheFolder_SeenAndTheWaiterWoken()
    {
        using var tracker = new StableFileTracker(TimeSpan.FromSeconds(10), seenMeansComplete: false, _clock);
        var errors = new List<Exception>();
        using var watcher = tracker.Watch(_tmp.Path, "*.png", tracker.Seen, errors.Add);
        var staging = Write("x.part", 10);
        File.Move(staging, Path.Combine(_tmp.Path, "x.png"));

        Assert.True(await tracker.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None), "the watcher woke the waiter");
        var taken = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (taken.Count == 0 && DateTime.UtcNow < deadline)
        {
            taken.AddRange(tracker.TakeComplete().Select(f => Path.GetFileName(f.Path)));
            await tracker.WaitAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        }

        Assert.Equal(["x.png"], taken); // renamed in: complete at once, although the window is 10 s of a clock that never moves
        Assert.Empty(errors);
    }

    [Fact]
    public void Probe_DirectoriesAndLinksArePresent_MissingIsNull()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_tmp.Path, "folder.png")).FullName;
        var link = Path.Combine(_tmp.Path, "dangling.png");
        File.CreateSymbolicLink(link, Path.Combine(_tmp.Path, "nowhere"));
        Assert.NotNull(StableFileTracker.Probe(dir));
        Assert.Equal((0L, 0L), StableFileTracker.Probe(link));
        Assert.Null(StableFileTracker.Probe(Path.Combine(_tmp.Path, "missing.png")));
        Assert.Null(StableFileTracker.SignatureOf(Path.Combine(_tmp.Path, "missing.png")));
    }
}
