using System.Security.Cryptography;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace FmaEdge.Daemon.Tests.Models;

public sealed class ModelHotSwapTests
{
    [Fact]
    public async Task HotSwap_UnderSteadyStream_LosesNothingAndNeverUsesHalfWrittenModel()
    {
        using var tmp = new TempFolder("swap");
        var modelA = TestModels.Create(Path.Combine(tmp.Path, "models", "model-a.onnx"), seed: 1, size: 64);
        var shaA = Sha(modelA);
        var bytesB = TestModels.CreateBytes(seed: 2, size: 48); // another input size: queued tensors must be redone
        var shaB = Convert.ToHexStringLower(SHA256.HashData(bytesB));
        // The model watcher runs on the test's clock: a file counts as "unchanged for StableMs" (300 ms) only when the test
        // moves that clock, so a slow machine cannot make a half-written model look finished.
        var modelClock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var d = await DaemonHarness.StartAsync(tmp.Path, services: s =>
            s.AddSingleton(sp => ActivatorUtilities.CreateInstance<ModelManager>(sp, (TimeProvider)modelClock)));
        Assert.Equal(shaA, d.Models.Current!.Classifier.Model.Sha256);
        List<string?> Rejected() => d.Events("model_rejected").Select(e => Path.GetFileName(e.GetProperty("subject").GetString())).ToList();
        Task SettleAsync(Func<bool> judged, string what) => DaemonHarness.WaitUntilAsync(() =>
        {
            modelClock.Advance(TimeSpan.FromMilliseconds(100));
            return judged();
        }, what);

        var garbage = new byte[20_000];
        new Random(3).NextBytes(garbage);
        await File.WriteAllBytesAsync(Path.Combine(d.ModelsDir, "garbage.onnx"), garbage);
        await SettleAsync(() => Rejected().Contains("garbage.onnx"), "garbage.onnx refused");
        await File.WriteAllBytesAsync(Path.Combine(d.ModelsDir, "b-truncated.onnx"), bytesB[..(bytesB.Length * 2 / 3)]);
        await SettleAsync(() => Rejected().Contains("b-truncated.onnx"), "b-truncated.onnx refused");

        // The valid model written in place, slowly: half-written states must never be validated or loaded. Between pieces
        // more than StableMs of real time passes (a watcher on the system clock would judge the half-written file), but only
        // 100 ms of the watcher's.
        await using (var fs = new FileStream(Path.Combine(d.ModelsDir, "model-b.onnx"), FileMode.CreateNew))
        {
            var chunk = bytesB.Length / 6 + 1;
            for (var off = 0; off < bytesB.Length; off += chunk)
            {
                await fs.WriteAsync(bytesB.AsMemory(off, Math.Min(chunk, bytesB.Length - off)));
                await fs.FlushAsync();
                await Task.Delay(400);
                Assert.DoesNotContain("model-b.onnx", Rejected());
                modelClock.Advance(TimeSpan.FromMilliseconds(100));
            }
        }

        // Images stream while the finished model is judged, loaded and swapped in.
        var images = TestPaths.SampleImages("val", perLeaf: 3).Take(60).ToList();
        var stream = Task.Run(async () =>
        {
            for (var i = 0; i < images.Count; i++)
            {
                d.Drop([images[i]], $"{i:D3}-");
                await Task.Delay(40);
            }
        });
        await DaemonHarness.WaitUntilAsync(() => d.Folder.GetState().Frames >= 10, "the stream under way");
        await SettleAsync(() => d.Models.Current!.Classifier.Model.Sha256 == shaB, "the swap to model B");
        await stream;
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == images.Count && d.Pipeline.InFlight == 0, "every image's result", 60_000);

        var results = d.Results();
        Assert.Equal(images.Count, results.Select(r => r.GetProperty("imageId").GetString()).Distinct().Count());
        Assert.Equal(0, d.Pipeline.Failed);
        var shas = results.Select(r => r.GetProperty("modelSha256").GetString()).ToList();
        Assert.All(shas, s => Assert.Contains(s, new[] { shaA, shaB }));
        var firstB = shas.IndexOf(shaB);
        if (firstB >= 0)
        {
            Assert.DoesNotContain(shaA, shas.Skip(firstB)); // one atomic swap, no flip-flopping
        }

        var rejected = Rejected();
        Assert.Contains("garbage.onnx", rejected);
        Assert.Contains("b-truncated.onnx", rejected);
        Assert.DoesNotContain("model-b.onnx", rejected);
        var swapped = d.Events("model_swapped");
        Assert.Single(swapped);
        Assert.Equal(shaB, swapped[0].GetProperty("data").GetProperty("sha256").GetString());

        // Images after the swap are classified by B; a rollback is a file drop too.
        d.Drop(TestPaths.SampleImages("train", perLeaf: 1).Take(2), "after-");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == images.Count + 2, "results after the swap");
        Assert.All(d.Results().Skip(images.Count), r => Assert.Equal(shaB, r.GetProperty("modelSha256").GetString()));

        File.Copy(modelA, Path.Combine(d.ModelsDir, "model-a-rollback.onnx"));
        await SettleAsync(() => d.Models.Current!.Classifier.Model.Sha256 == shaA, "the rollback to model A");
        d.Drop(TestPaths.SampleImages("train", perLeaf: 1).Skip(2).Take(2), "rollback-");
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == images.Count + 4, "results after the rollback");
        Assert.All(d.Results().Skip(images.Count + 2), r => Assert.Equal(shaA, r.GetProperty("modelSha256").GetString()));
        Assert.Equal(2, d.Models.Swaps);
    }

    [Fact]
    public async Task HotSwap_InvalidModelDropped_OldKeepsServingAndStatusSaysWhy()
    {
        using var tmp = new TempFolder("reject");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        var serving = d.Models.Current!.Classifier.Model.Sha256;

        // A real ONNX protobuf that breaks the contract: a negative threshold in the manifest.
        var bytes = TestModels.CreateBytes(seed: 5);
        var model = Onnx.ModelProto.Parser.ParseFrom(bytes);
        var manifest = FmaEdge.Core.Contract.ModelManifest.FromJson(model.MetadataProps.Single(p => p.Key == "fmaedge.manifest").Value);
        FmaEdge.Core.Contract.ModelContract.WriteManifest(model, manifest with { Decoding = manifest.Decoding with { Thresholds = [0.5, -0.5, 0.2] } });
        await File.WriteAllBytesAsync(Path.Combine(d.ModelsDir, "bad-thresholds.onnx"), Google.Protobuf.MessageExtensions.ToByteArray(model));

        await DaemonHarness.WaitUntilAsync(() => d.Models.LastRejection is not null, "the rejection");
        Assert.Equal(serving, d.Models.Current!.Classifier.Model.Sha256);
        var snap = d.Status.Snapshot();
        Assert.Equal("degraded", snap.Health);
        Assert.Contains(snap.Problems, p => p.Contains("bad-thresholds.onnx", StringComparison.Ordinal));
        Assert.Contains(snap.Model!.LastRejection!.Reasons, r => r.Contains("thresholds[1]", StringComparison.Ordinal));

        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(2));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 2, "results with the old model");
        Assert.All(d.Results(), r => Assert.Equal(serving, r.GetProperty("modelSha256").GetString()));
    }

    [Fact]
    public async Task Start_NewestFileInvalid_ServesNewestValidAndSaysWhy()
    {
        using var tmp = new TempFolder("initial");
        var models = Path.Combine(tmp.Path, "models");
        var older = TestModels.Create(Path.Combine(models, "older.onnx"), seed: 11);
        var newer = TestModels.Create(Path.Combine(models, "newer.onnx"), seed: 12);
        var newest = Path.Combine(models, "newest.onnx");
        await File.WriteAllBytesAsync(newest, (await File.ReadAllBytesAsync(newer))[..1000]); // truncated copy
        File.SetLastWriteTimeUtc(older, DateTime.UtcNow.AddMinutes(-20));
        File.SetLastWriteTimeUtc(newer, DateTime.UtcNow.AddMinutes(-10));

        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        Assert.Equal(Sha(newer), d.Models.Current!.Classifier.Model.Sha256);
        Assert.Equal(newest, d.Models.LastRejection!.Path);
        Assert.NotEmpty(d.Models.LastRejection.Reasons);
    }

    [Fact]
    public async Task Start_NoValidModel_FailsWithEveryReason()
    {
        using var tmp = new TempFolder("nomodel");
        var models = Path.Combine(tmp.Path, "models");
        Directory.CreateDirectory(models);
        await File.WriteAllTextAsync(Path.Combine(models, "junk.onnx"), "junk");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => DaemonHarness.StartAsync(tmp.Path));
        Assert.Contains("junk.onnx", e.Message, StringComparison.Ordinal);
        Assert.Contains("not an ONNX model", e.Message, StringComparison.Ordinal);
    }

    private static string Sha(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
