using System.Globalization;
using FmaEdge.Daemon.Pipeline;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.Inference;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Pipeline;

/// <summary>ONNX Runtime's workers keep the normal priority while the daemon's other threads are lowered (Linux nice
/// values, read back from the kernel). Lowering is process-wide and cannot be undone, as in the daemon.</summary>
public sealed class InferenceThreadsTests
{
    [Fact]
    public async Task LowerOthers_RealSession_OnnxRuntimeWorkersKeepThePriorityOfTheThreadThatLoadedIt()
    {
        Assert.True(OperatingSystem.IsLinux(), "the daemon's target is Linux");
        // A session with 2 intra-op threads: ONNX Runtime starts a worker thread while the session is made.
        var (classifier, loaderNice) = await InferenceThreads.RunAsync("probe", () =>
            (OnnxClassifier.Load(TestModels.Real, new InferenceOptions { Providers = ["cpu"], IntraOpThreads = 2 }), ThreadNice()));
        using var _ = classifier;
        var before = InferenceThreads.Priorities();

        InferenceThreads.LowerOthers(12);

        var after = InferenceThreads.Priorities();
        var workers = after.Where(t => t.Name == "fma-infer-probe").ToList(); // the loader has ended: these are ORT's
        Assert.True(workers.Count >= 1, "ONNX Runtime's worker carries the name of the thread that made the session");
        Assert.All(workers, w => Assert.Equal(loaderNice, w.Nice));
        var others = before.Where(t => !t.Name.StartsWith(InferenceThreads.NamePrefix, StringComparison.Ordinal)).Select(t => t.Tid).ToHashSet();
        var lowered = after.Where(t => others.Contains(t.Tid)).ToList();
        Assert.NotEmpty(lowered);
        Assert.All(lowered, t => Assert.True(t.Nice >= 12, $"thread {t.Tid} '{t.Name}' at nice {t.Nice}"));
        classifier.Classify(new float[classifier.Preprocessor.TensorLength], 1); // the session still runs
    }

    [Fact]
    public async Task Pipeline_DefaultSettings_InferenceStageRunsOnANormalPriorityThreadAndTheRestIsLowered()
    {
        using var tmp = new TempFolder("nice");
        await using var d = await DaemonHarness.StartAsync(tmp.Path);
        d.Drop(TestPaths.SampleImages("val").Take(4));
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 4, "four results");
        var stage = await InferenceThreads.RunAsync("probe2", ThreadNice);

        // The sweep runs every second; give it two.
        await DaemonHarness.WaitUntilAsync(() => InferenceThreads.Priorities().Any(t => t.Name == ".NET TP Worker" && t.Nice >= 10),
            "thread-pool threads lowered to nice 10", 5_000);
        var all = InferenceThreads.Priorities();
        var infer = all.Where(t => t.Name == "fma-infer-stage").ToList();
        Assert.NotEmpty(infer);
        Assert.All(infer, t => Assert.Equal(stage, t.Nice));
    }

    /// <summary>The calling thread's nice value (field 19 of /proc/thread-self/stat).</summary>
    private static int ThreadNice()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[16], CultureInfo.InvariantCulture);
    }
}
