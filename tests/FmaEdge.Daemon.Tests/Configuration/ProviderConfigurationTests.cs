using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Models;
using FmaEdge.Inference;
using FmaEdge.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;

namespace FmaEdge.Daemon.Tests.Configuration;

/// <summary>Each TensorRT and CUDA key of docs/configuration.md reaches ONNX Runtime as the documented provider option,
/// and status shows what was passed (on this machine without a GPU: with ONNX Runtime's whole reason for the fallback).</summary>
public sealed class ProviderConfigurationTests
{
    private static readonly ValidatedModel DemoModel = ModelContract.Validate(File.ReadAllBytes(TestPaths.DemoModel), TestPaths.DemoModel).Model!;

    private static (IReadOnlyDictionary<string, string> Trt, IReadOnlyDictionary<string, string> Cuda) Settings(TempFolder tmp, params (string Key, string Value)[] keys)
    {
        var overrides = new Dictionary<string, string?> { ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state") };
        foreach (var (k, v) in keys)
        {
            overrides["FmaEdge:" + k] = v;
        }

        var options = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"), overrides: overrides));
        var inference = OnnxClassifierLoader.Map(options);
        return (ProviderSettings.TensorRt(inference.TensorRt, DemoModel), ProviderSettings.Cuda(inference.Cuda));
    }

    [Fact]
    public void Map_Defaults_Fp16WithLayerNormFp32_CachesKeyedByModelHash_ProfileUpToMaxBatch()
    {
        using var tmp = new TempFolder("trt");
        var (trt, cuda) = Settings(tmp);
        var input = DemoModel.Manifest.Input;
        var cacheDir = Path.Combine(tmp.Path, "state", "trt-cache", DemoModel.ShortHash);
        Assert.Equal("0", trt["device_id"]);
        Assert.Equal("1", trt["trt_fp16_enable"]);
        Assert.Equal("1", trt["trt_layer_norm_fp32_fallback"]);
        Assert.Equal((1024L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), trt["trt_max_workspace_size"]);
        Assert.Equal("3", trt["trt_builder_optimization_level"]);
        Assert.Equal($"{input.Name}:1x3x{input.Height}x{input.Width}", trt["trt_profile_min_shapes"]);
        Assert.Equal($"{input.Name}:1x3x{input.Height}x{input.Width}", trt["trt_profile_opt_shapes"]);
        Assert.Equal($"{input.Name}:8x3x{input.Height}x{input.Width}", trt["trt_profile_max_shapes"]);
        Assert.Equal("1", trt["trt_engine_cache_enable"]);
        Assert.Equal(cacheDir, trt["trt_engine_cache_path"]);
        Assert.Equal("1", trt["trt_timing_cache_enable"]);
        Assert.Equal(cacheDir, trt["trt_timing_cache_path"]);
        Assert.True(Directory.Exists(cacheDir));
        Assert.False(trt.ContainsKey("trt_dla_enable"));
        Assert.False(trt.ContainsKey("trt_int8_enable"));
        Assert.Equal(new Dictionary<string, string> { ["device_id"] = "0" }, cuda);
    }

    [Fact]
    public void TensorRt_QuantizedModel_Int8EnabledWithoutCalibrationTable()
    {
        using var tmp = new TempFolder("trt-int8");
        var quantized = DemoModel with { Manifest = DemoModel.Manifest with { Quantization = new QuantizationSpec { Activations = "int8-symmetric" } } };

        var trt = ProviderSettings.TensorRt(new TensorRtOptions { CacheDir = tmp.Path }, quantized);

        Assert.Equal("1", trt["trt_int8_enable"]);
        Assert.Equal("1", trt["trt_fp16_enable"]); // layers left float may still run in fp16
        Assert.False(trt.ContainsKey("trt_int8_calibration_table_name"));
    }

    [Theory]
    [InlineData("Inference:TensorRt:Fp16", "false", "trt_fp16_enable", "0")]
    [InlineData("Inference:TensorRt:LayerNormFp32Fallback", "false", "trt_layer_norm_fp32_fallback", "0")]
    [InlineData("Inference:TensorRt:WorkspaceMiB", "256", "trt_max_workspace_size", "268435456")]
    [InlineData("Inference:TensorRt:BuilderOptimizationLevel", "5", "trt_builder_optimization_level", "5")]
    [InlineData("Inference:TensorRt:DlaCore", "1", "trt_dla_core", "1")]
    [InlineData("Inference:TensorRt:DlaCore", "0", "trt_dla_enable", "1")]
    [InlineData("Inference:CudaDevice", "1", "device_id", "1")]
    public void Map_TensorRtKey_ReachesOnnxRuntimeAsDocumented(string key, string value, string ortKey, string expected)
    {
        using var tmp = new TempFolder("trt");
        var (trt, _) = Settings(tmp, (key, value));
        Assert.Equal(expected, trt[ortKey]);
    }

    [Fact]
    public void Map_BatchKeys_SetTheProfile()
    {
        using var tmp = new TempFolder("trt");
        var (trt, _) = Settings(tmp, ("Inference:MaxBatch", "16"), ("Inference:TensorRt:OptBatch", "4"));
        var input = DemoModel.Manifest.Input;
        Assert.Equal($"{input.Name}:4x3x{input.Height}x{input.Width}", trt["trt_profile_opt_shapes"]);
        Assert.Equal($"{input.Name}:16x3x{input.Height}x{input.Width}", trt["trt_profile_max_shapes"]);
    }

    [Fact]
    public void Map_CacheKeys_TurnEachCacheOffAndMoveTheFolder()
    {
        using var tmp = new TempFolder("trt");
        var elsewhere = Path.Combine(tmp.Path, "engines");
        var (noEngine, _) = Settings(tmp, ("Inference:TensorRt:EngineCache", "false"), ("Inference:TensorRt:CacheDir", elsewhere));
        Assert.False(noEngine.ContainsKey("trt_engine_cache_enable"));
        Assert.Equal(Path.Combine(elsewhere, DemoModel.ShortHash), noEngine["trt_timing_cache_path"]);
        var (noTiming, _) = Settings(tmp, ("Inference:TensorRt:TimingCache", "false"));
        Assert.False(noTiming.ContainsKey("trt_timing_cache_enable"));
        Assert.Equal("1", noTiming["trt_engine_cache_enable"]);
    }

    [Fact]
    public void Map_CudaMemoryLimit_ReachesOnnxRuntimeInBytes()
    {
        using var tmp = new TempFolder("trt");
        var (_, cuda) = Settings(tmp, ("Inference:CudaMemoryLimitMiB", "512"), ("Inference:CudaDevice", "1"));
        Assert.Equal("536870912", cuda["gpu_mem_limit"]);
        Assert.Equal("1", cuda["device_id"]);
    }

    [Theory]
    [InlineData("Inference:TensorRt:OptBatch", "9", "FmaEdge:Inference:TensorRt:OptBatch")]
    [InlineData("Inference:TensorRt:BuilderOptimizationLevel", "6", "FmaEdge:Inference:TensorRt:BuilderOptimizationLevel")]
    [InlineData("Inference:TensorRt:DlaCore", "2", "FmaEdge:Inference:TensorRt:DlaCore")]
    [InlineData("Inference:CudaMemoryLimitMiB", "-1", "FmaEdge:Inference:CudaMemoryLimitMiB")]
    public void Bind_ProviderKeyOutOfBounds_IsAConfigurationError(string key, string value, string expected)
    {
        using var tmp = new TempFolder("trt");
        var config = FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"),
            overrides: new Dictionary<string, string?> { ["FmaEdge:" + key] = value });
        var ex = Assert.Throws<ConfigurationErrorsException>(() => FmaEdgeConfiguration.Bind(config));
        Assert.Contains(ex.Errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Load_NoGpuHere_EachFailedProviderKeepsOnnxRuntimesWholeReasonAndItsOptions()
    {
        if (File.Exists("/dev/nvidia0") || File.Exists("/dev/nvhost-ctrl-gpu"))
        {
            return; // on a GPU machine the fallback does not happen; tools/scripts/gpu-check.sh covers that side
        }

        using var tmp = new TempFolder("trt");
        var options = FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(systemConfigDir: Path.Combine(tmp.Path, "none"),
            overrides: new Dictionary<string, string?> { ["FmaEdge:Paths:StateDir"] = Path.Combine(tmp.Path, "state"), ["FmaEdge:Inference:IntraOpThreads"] = "1" }));
        using var c = new OnnxClassifierLoader(options, NullLoggerFactory.Instance).Load(TestPaths.DemoModel, CancellationToken.None);
        Assert.Equal("cpu", c.ExecutionProvider);
        var trt = c.ProviderAttempts[0];
        Assert.Equal("tensorrt", trt.Provider);
        Assert.False(trt.Succeeded);
        // ONNX Runtime's first line is only "[ErrorCode:Fail]"-like; the whole reason names what could not be loaded.
        Assert.Matches(@"\.so|library|TensorRT|CUDA", trt.Reason!);
        Assert.True(trt.Reason!.Length > "[ErrorCode:Fail]".Length + 10, trt.Reason);
        Assert.Equal("1", trt.Settings["trt_fp16_enable"]);
        Assert.Equal("cuda", c.ProviderAttempts[1].Provider);
        Assert.Equal("0", c.ProviderAttempts[1].Settings["device_id"]);
        Assert.True(c.ProviderAttempts[2].Succeeded);
    }
}
