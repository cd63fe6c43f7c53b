using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Tests;

/// <summary>Every convolution shape ConvNeXt-atto uses at 112 px (the reference recipe) and 128 px (the shipped
/// model), forward and backward, in the float32 layout the trainer runs (channels-last) against float64. Single ops
/// are well conditioned, so any difference beyond float32 rounding is a kernel bug: libtorch 2.10 on the dev machine
/// gives wrong outputs for a 160->40 1x1 convolution on 28x28 (channels-last, relative error 0.24) and NaN for the
/// 40->80 2x2 stride-2 one in the normal layout, which is why the MLP stays Linear and the network runs channels-last.</summary>
public class ConvKernelTests
{
    // n, inC, outC, size, kernel, stride, groups: the stem, the depthwise 7x7 of each stage and the downsamples,
    // at the recipes' batch (64) and a small one (oneDNN picks kernels by shape, batch included).
    public static TheoryData<int, int, int, int, int, int, int> Shapes
    {
        get
        {
            var data = new TheoryData<int, int, int, int, int, int, int>();
            foreach (var image in new[] { 112, 128 })
            {
                var s = image / 4;
                foreach (var n in new[] { 8, 64 })
                {
                    data.Add(n, 3, 40, image, 4, 4, 1);
                    data.Add(n, 40, 40, s, 7, 1, 40);
                    data.Add(n, 40, 80, s, 2, 2, 1);
                    data.Add(n, 80, 80, s / 2, 7, 1, 80);
                    data.Add(n, 80, 160, s / 2, 2, 2, 1);
                    data.Add(n, 160, 160, s / 4, 7, 1, 160);
                    data.Add(n, 160, 320, s / 4, 2, 2, 1);
                    data.Add(n, 320, 320, s / 8, 7, 1, 320);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Conv2d_Float32ChannelsLast_MatchesFloat64(int n, int inC, int outC, int size, int kernel, int stride, int groups)
    {
        _ = TestData.Tree;
        manual_seed(3);
        var x64 = randn(n, inC, size, size, dtype: ScalarType.Float64);
        var w64 = randn(outC, inC / groups, kernel, kernel, dtype: ScalarType.Float64).mul_(0.1);
        var b64 = randn(outC, dtype: ScalarType.Float64);
        var pad = kernel == 7 ? 3 : 0;
        var gy64 = randn(ConvOut(n, outC, size, kernel, stride, pad), dtype: ScalarType.Float64);

        var (y32, gx32, gw32, gb32) = Run(x64.to(ScalarType.Float32), w64.to(ScalarType.Float32), b64.to(ScalarType.Float32), gy64.to(ScalarType.Float32), stride, pad, groups, channelsLast: true);
        var (y, gx, gw, gb) = Run(x64, w64, b64, gy64, stride, pad, groups, channelsLast: false);
        foreach (var (name, a, r) in new[] { ("output", y32, y), ("input grad", gx32, gx), ("weight grad", gw32, gw), ("bias grad", gb32, gb) })
        {
            var rel = (a.to(ScalarType.Float64) - r).norm().item<double>() / r.norm().item<double>();
            Assert.True(rel < 1e-4, $"{name}: float32 differs from float64 by {rel:E2} (relative)");
        }
    }

    private static long[] ConvOut(int n, int c, int size, int k, int s, int p) => [n, c, ((size + (2 * p) - k) / s) + 1, ((size + (2 * p) - k) / s) + 1];

    private static (Tensor Y, Tensor Gx, Tensor Gw, Tensor Gb) Run(Tensor x, Tensor w, Tensor b, Tensor gy, int stride, int pad, int groups, bool channelsLast)
    {
        var xi = (channelsLast ? x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : x.clone()).requires_grad_();
        var wi = w.clone().requires_grad_();
        var bi = b.clone().requires_grad_();
        var y = F.conv2d(xi, wi, bi, strides: [stride, stride], padding: [pad, pad], groups: groups);
        y.backward([gy]);
        return (y.detach(), xi.grad!.detach(), wi.grad!.detach(), bi.grad!.detach());
    }
}
