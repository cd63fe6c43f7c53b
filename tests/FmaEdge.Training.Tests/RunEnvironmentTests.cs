using System.Text.RegularExpressions;
using FmaEdge.TestSupport;
using FmaEdge.Training.Reporting;

namespace FmaEdge.Training.Tests;

public sealed class RunEnvironmentTests
{
    [Fact]
    public void Capture_ThisMachine_NamesTheCpuThreadsAndThePinnedLibraryVersions()
    {
        var env = RunEnvironment.Capture(torchThreads: 2, loaderThreads: 1);

        var (model, flags) = RunEnvironment.ReadCpuInfo();
        Assert.Equal(model, env["cpu_model"]!.GetValue<string>());
        Assert.NotEqual("unknown", model);
        Assert.Equal(RunEnvironment.DispatchFlags.Where(flags.Contains), env["cpu_dispatch_flags"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(2, env["torch_threads"]!.GetValue<int>());
        Assert.Equal(Environment.ProcessorCount, env["logical_cores"]!.GetValue<int>());
        // The versions are the ones Directory.Packages.props pins.
        var props = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "Directory.Packages.props"));
        foreach (var name in new[] { "TorchSharp", "libtorch-cpu-linux-x64", "Microsoft.ML.OnnxRuntime.Managed" })
        {
            var pinned = Regex.Match(props, $"Include=\"{Regex.Escape(name)}\" Version=\"([^\"]+)\"").Groups[1].Value;
            Assert.Equal(pinned, env["packages"]![name]!.GetValue<string>());
        }
    }
}
