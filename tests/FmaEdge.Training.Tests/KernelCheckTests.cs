using System.Diagnostics;
using System.Text.Json.Nodes;
using FmaEdge.TestSupport;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;
using TorchSharp;

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

    [Theory]
    [InlineData(3, 40, 112, 4)]
    [InlineData(40, 80, 28, 2)]
    [InlineData(160, 320, 7, 2)] // 7 -> 3: the last row and column are dropped, as the convolution does
    public void ForwardAsMatMul_NonOverlappingConvolution_EqualsTheConvolution(int inC, int outC, int size, int k)
    {
        TorchSharp.torch.manual_seed(5);
        using var conv = new Conv2dLayer("c", inC, outC, k, k, 0, 1);
        using (TorchSharp.torch.no_grad())
        {
            conv.Bias!.normal_();
        }

        var x = TorchSharp.torch.randn(8, inC, size, size).to(TorchSharp.torch.ScalarType.Float64);
        conv.to(TorchSharp.torch.ScalarType.Float64);

        var expected = conv.forward(x);
        var actual = conv.ForwardAsMatMul(x);

        Assert.Equal(expected.shape, actual.shape);
        Assert.True((actual - expected).abs().max().item<double>() < 1e-10);
    }

    [Fact]
    public void Train_OneDnnAvx2Path_DetectedAndTrainedWithTheMatMulFallback_RecordedInTheHistory()
    {
        using var tmp = new TempFolder("kernel-check");
        var data = Path.Combine(tmp.Path, "data");
        foreach (var image in TestData.Subset("train", 3).Images)
        {
            var target = Path.Combine(data, Path.GetRelativePath(TestPaths.DatasetTrain, image.Path));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(image.Path, target);
        }

        var run = Train(["train", "--data", data, "--out", Path.Combine(tmp.Path, "run"), "--calib-fraction", "0", "--model", "convnext_atto",
            "--img-size", "112", "--epochs", "1", "--max-batches", "1", "--batch", "8", "--threads", "2"]);

        Assert.Contains("oneDNN's float32 kernels are wrong on this CPU", run.Output, StringComparison.Ordinal);
        Assert.Contains("kernel check: float32 gradients match float64", run.Output, StringComparison.Ordinal);
        var history = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, "run", "history.json")))!;
        var check = history["environment"]!["kernel_check"]!;
        Assert.True(check["passed"]!.GetValue<bool>());
        Assert.Equal(KernelCheckResult.PatchesAsMatMul, check["fallback"]!.GetValue<string>());
        Assert.True(check["worst_relative_error"]!.GetValue<double>() < KernelCheck.Tolerance);
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
