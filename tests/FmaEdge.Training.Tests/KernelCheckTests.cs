using System.Diagnostics;
using System.Text.Json.Nodes;
using FmaEdge.TestSupport;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;

namespace FmaEdge.Training.Tests;

/// <summary>The trainer's start-up check of libtorch's CPU kernels. This machine has AVX-512, where the kernels are right;
/// its AVX2 path (what a CPU without AVX-512 takes, forced here with ONEDNN_MAX_CPU_ISA=AVX2, which needs a fresh
/// process because oneDNN reads it once) computes ConvNeXt's gradients wrongly.</summary>
public sealed class KernelCheckTests
{
    [Fact]
    public void Run_ThisMachinesDefaultKernels_Atto112GradientsMatchFloat64()
    {
        var result = KernelCheck.Run(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 112 }, TestData.Tree);

        Assert.True(result.Passed, $"{result.WorstParameter}: {result.WorstRelativeError:E2}");
        Assert.True(result.WorstRelativeError < 1e-4, $"{result.WorstParameter}: {result.WorstRelativeError:E2}");
    }

    [Fact]
    public void Train_OneDnnAvx2Path_RefusedWithTheReason_AndWithSkipTrainsAndRecordsIt()
    {
        using var tmp = new TempFolder("kernel-check");
        var data = Path.Combine(tmp.Path, "data");
        foreach (var group in TestData.Subset("train", 3).Images.GroupBy(i => i.Leaf))
        {
            foreach (var image in group)
            {
                var target = Path.Combine(data, Path.GetRelativePath(TestPaths.DatasetTrain, image.Path));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(image.Path, target);
            }
        }

        string[] Args(string run) => ["train", "--data", data, "--out", Path.Combine(tmp.Path, run), "--calib-fraction", "0", "--model", "convnext_atto",
            "--img-size", "112", "--epochs", "1", "--max-batches", "1", "--batch", "8", "--threads", "2"];

        var refused = Train(Args("refused"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("compute this model's gradients wrongly on this machine", refused.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(tmp.Path, "refused", "history.json")));

        var skipped = Train([.. Args("skipped"), "--skip-kernel-check"]);
        Assert.Contains("kernel check failed, training anyway", skipped.Output, StringComparison.Ordinal);
        var history = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, "skipped", "history.json")))!;
        var check = history["environment"]!["kernel_check"]!;
        Assert.False(check["passed"]!.GetValue<bool>());
        Assert.True(check["worst_relative_error"]!.GetValue<double>() > KernelCheck.Tolerance);
        Assert.Equal("AVX2", history["environment"]!["dispatch_variables"]!["ONEDNN_MAX_CPU_ISA"]!.GetValue<string>());
    }

    private static (int ExitCode, string Output) Train(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "fma-train.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["ONEDNN_MAX_CPU_ISA"] = "AVX2";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("fma-train did not finish within 5 minutes");
        }

        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
