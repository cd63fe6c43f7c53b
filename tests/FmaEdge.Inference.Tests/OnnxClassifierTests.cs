using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.TestSupport;
using FmaEdge.Vision;

namespace FmaEdge.Inference.Tests;

/// <summary>Runs the trainer-produced demo model (models/) through ONNX Runtime on real images.</summary>
public sealed class OnnxClassifierTests : IClassFixture<OnnxClassifierTests.ModelFixture>
{
    private readonly ModelFixture _fx;

    public OnnxClassifierTests(ModelFixture fx) => _fx = fx;

    public sealed class ModelFixture : IDisposable
    {
        public OnnxClassifier Classifier { get; } = OnnxClassifier.Load(TestPaths.DemoModel);

        public void Dispose() => Classifier.Dispose();
    }

    private static bool HasNvidiaGpu => File.Exists("/dev/nvidia0") || File.Exists("/dev/nvhost-ctrl-gpu");

    [Fact]
    public void Load_DefaultProviderChain_UsesBestWorkingProviderAndSaysWhyOthersFailed()
    {
        var c = _fx.Classifier;
        Assert.Equal(c.ExecutionProvider, c.ProviderAttempts[^1].Provider);
        Assert.True(c.ProviderAttempts[^1].Succeeded);
        if (HasNvidiaGpu)
        {
            Assert.Contains(c.ExecutionProvider, new[] { ExecutionProviders.TensorRt, ExecutionProviders.Cuda });
        }
        else
        {
            // No GPU here: TensorRT and CUDA must each fail with a stated reason, then CPU serves.
            Assert.Equal(ExecutionProviders.Cpu, c.ExecutionProvider);
            Assert.Equal([ExecutionProviders.TensorRt, ExecutionProviders.Cuda, ExecutionProviders.Cpu], c.ProviderAttempts.Select(a => a.Provider));
            Assert.All(c.ProviderAttempts.Take(2), a =>
            {
                Assert.False(a.Succeeded);
                Assert.False(string.IsNullOrWhiteSpace(a.Reason));
            });
        }
    }

    [Fact]
    public void Load_CpuOnly_TriesNothingElse()
    {
        using var c = OnnxClassifier.Load(TestPaths.DemoModel, new InferenceOptions { Providers = ["cpu"], IntraOpThreads = 1 });
        Assert.Equal(ExecutionProviders.Cpu, c.ExecutionProvider);
        Assert.Single(c.ProviderAttempts);
    }

    [Fact]
    public void Load_UnknownProvider_ThrowsWithTheName()
    {
        var e = Assert.Throws<ArgumentException>(() => OnnxClassifier.Load(TestPaths.DemoModel, new InferenceOptions { Providers = ["openvino-typo"] }));
        Assert.Contains("openvino-typo", e.Message);
    }

    [Fact]
    public void Load_GarbageFile_ThrowsInvalidModelWithViolations()
    {
        using var tmp = new TempFolder("inference");
        var path = tmp.File("garbage.onnx");
        File.WriteAllBytes(path, Enumerable.Range(0, 4096).Select(i => (byte)(i * 31)).ToArray());
        var e = Assert.Throws<InvalidModelException>(() => OnnxClassifier.Load(path));
        Assert.NotEmpty(e.Report.Violations);
    }

    [Fact]
    public void Run_BatchOfEight_EqualsEightSingleRuns()
    {
        var c = _fx.Classifier;
        var files = TestPaths.SampleImages("val").Take(8).ToList();
        var len = c.Preprocessor.TensorLength;
        var batch = new float[files.Count * len];
        for (var i = 0; i < files.Count; i++)
        {
            c.Preprocessor.PreprocessFile(files[i]).CopyTo(batch, i * len);
        }

        var batched = c.Run(batch, files.Count);
        for (var i = 0; i < files.Count; i++)
        {
            var single = c.Run(batch[(i * len)..((i + 1) * len)], 1);
            for (var l = 0; l < single.Count; l++)
            {
                var n = single[l].Length;
                for (var k = 0; k < n; k++)
                {
                    Assert.Equal(single[l][k], batched[l][(i * n) + k], 3);
                }
            }
        }
    }

    [Fact]
    public void Classify_RealValImages_FirstLevelMostlyRight()
    {
        // One image per leaf from the real validation split; the demo model was trained on train only.
        var c = _fx.Classifier;
        var val = DatasetLoader.ScanFolder(TestPaths.DatasetVal, c.Model.Tree);
        var picks = val.Images.GroupBy(i => i.Leaf).Select(g => g.First()).ToList();
        var rightL1 = 0;
        foreach (var img in picks)
        {
            using var rgb = ImageDecoder.LoadRgb(img.Path);
            var p = c.Classify(rgb);
            Assert.True(c.Model.Tree.IsConsistentPath(p.Path.Select(n => n.Index).ToArray()));
            if (p.Path[0].Index == c.Model.Tree.AncestorOfLeaf(img.Leaf, 0))
            {
                rightL1++;
            }
        }

        // Chance at level 1 is 1/3; the shipped model reaches about 98 % on val.
        Assert.True(rightL1 >= picks.Count * 0.8, $"level 1 right for {rightL1}/{picks.Count}");
    }

    [Fact]
    public void Run_TooShortBatch_Throws()
    {
        Assert.Throws<ArgumentException>(() => _fx.Classifier.Run(new float[10], 1));
    }

    [Fact]
    public async Task Dispose_WhileRunsInFlight_WaitsForThemAndLaterRunsThrowObjectDisposed()
    {
        var c = OnnxClassifier.Load(TestPaths.DemoModel, new InferenceOptions { Providers = ["cpu"], IntraOpThreads = 1 });
        var input = c.Preprocessor.PreprocessFile(TestPaths.SampleImages("val")[0]);
        var batch = Enumerable.Repeat(input, 4).SelectMany(x => x).ToArray();
        var completed = 0;
        var refused = 0;
        var workers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 200; i++)
            {
                try
                {
                    Assert.Equal(3, c.Run(batch, 4).Count);
                    Interlocked.Increment(ref completed);
                }
                catch (ObjectDisposedException)
                {
                    Interlocked.Increment(ref refused);
                    return;
                }
            }
        })).ToArray();

        await Task.Delay(300);
        c.Dispose(); // must wait for the runs in flight; a freed native session under a run would kill the test host
        await Task.WhenAll(workers);

        Assert.True(completed > 0, "runs completed before the dispose");
        Assert.Throws<ObjectDisposedException>(() => c.Run(batch, 4));
        c.Dispose(); // idempotent
    }

    [Fact]
    public async Task Run_ConcurrentRunsUnderForcedGarbageCollection_AllComplete()
    {
        // Regression: a per-call RunOptions could be finalised by the GC while the native run read it, killing the
        // process with a segfault inside libonnxruntime about once in five daemon test runs.
        using var c = OnnxClassifier.Load(TestPaths.DemoModel, new InferenceOptions { Providers = ["cpu"], IntraOpThreads = 1 });
        var input = c.Preprocessor.PreprocessFile(TestPaths.SampleImages("val")[1]);
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        var runs = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            var n = 0;
            for (var i = 0; i < 150; i++)
            {
                n += c.Run(input, 1).Count == 3 ? 1 : 0;
            }

            return n;
        })));
        await stop.CancelAsync();
        await collector;
        Assert.Equal([150, 150], runs);
    }

    [Fact]
    public void EffectiveIntraOpThreads_Default_OnePerCoreTheProcessMayUse()
    {
        // Cpus_allowed_list is the affinity mask (taskset, systemd CPUAffinity=); ProcessorCount follows it and may be
        // lower still under a cgroup CPU quota.
        var allowed = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            .Split(':')[1].Trim().Split(',').Sum(r => r.Split('-') is [var a, var b] ? int.Parse(b, System.Globalization.CultureInfo.InvariantCulture) - int.Parse(a, System.Globalization.CultureInfo.InvariantCulture) + 1 : 1);
        Assert.Equal(Environment.ProcessorCount, new InferenceOptions().EffectiveIntraOpThreads);
        Assert.InRange(new InferenceOptions().EffectiveIntraOpThreads, 1, allowed);
        Assert.Equal(3, new InferenceOptions { IntraOpThreads = 3 }.EffectiveIntraOpThreads);
    }
}
