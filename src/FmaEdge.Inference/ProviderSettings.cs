using System.Globalization;
using FmaEdge.Core.Contract;
using Microsoft.ML.OnnxRuntime;

namespace FmaEdge.Inference;

/// <summary>The provider options handed to ONNX Runtime, by its own key names (docs: ONNX Runtime's TensorRT and CUDA
/// execution provider pages). One place builds them, so what status shows is exactly what the session was given.
/// Pure functions; thread-safe.</summary>
public static class ProviderSettings
{
    /// <summary>TensorRT options for <paramref name="model"/>: precision (int8 on for a quantized model), workspace, the batch profile 1..MaxBatch on the
    /// model's input, and engine/timing caches in a sub-folder named after the model's hash (so a new model never
    /// loads a stale engine). Creates that sub-folder when caching is on.</summary>
    public static IReadOnlyDictionary<string, string> TensorRt(TensorRtOptions t, ValidatedModel model)
    {
        var inv = CultureInfo.InvariantCulture;
        var input = model.Manifest.Input;
        string Shape(int batch) => $"{input.Name}:{batch.ToString(inv)}x3x{input.Height.ToString(inv)}x{input.Width.ToString(inv)}";
        var settings = new Dictionary<string, string>
        {
            ["device_id"] = t.DeviceId.ToString(inv),
            ["trt_fp16_enable"] = Flag(t.Fp16),
            ["trt_layer_norm_fp32_fallback"] = Flag(t.LayerNormFp32Fallback),
            ["trt_max_workspace_size"] = t.MaxWorkspaceBytes.ToString(inv),
            ["trt_builder_optimization_level"] = t.BuilderOptimizationLevel.ToString(inv),
            ["trt_profile_min_shapes"] = Shape(1),
            ["trt_profile_opt_shapes"] = Shape(t.OptBatch),
            ["trt_profile_max_shapes"] = Shape(t.MaxBatch),
        };
        if (model.Manifest.Quantization is not null)
        {
            // A QDQ model (fma-train quantize) carries its own scales: TensorRT builds it as explicit int8, no calibration table.
            settings["trt_int8_enable"] = "1";
        }

        if (t.DlaCore >= 0)
        {
            settings["trt_dla_enable"] = "1";
            settings["trt_dla_core"] = t.DlaCore.ToString(inv);
        }

        if (t.CacheDir is not null && (t.EngineCache || t.TimingCache))
        {
            var dir = Path.Combine(t.CacheDir, model.ShortHash);
            Directory.CreateDirectory(dir);
            if (t.EngineCache)
            {
                settings["trt_engine_cache_enable"] = "1";
                settings["trt_engine_cache_path"] = dir;
            }

            if (t.TimingCache)
            {
                settings["trt_timing_cache_enable"] = "1";
                settings["trt_timing_cache_path"] = dir;
            }
        }

        return settings;
    }

    /// <summary>CUDA options: device and, when capped, the memory arena limit.</summary>
    public static IReadOnlyDictionary<string, string> Cuda(CudaOptions c)
    {
        var inv = CultureInfo.InvariantCulture;
        var settings = new Dictionary<string, string> { ["device_id"] = c.DeviceId.ToString(inv) };
        if (c.MemoryLimitBytes > 0)
        {
            settings["gpu_mem_limit"] = c.MemoryLimitBytes.ToString(inv);
        }

        return settings;
    }

    /// <summary>The options <paramref name="provider"/> ("tensorrt", "cuda" or "cpu") is given for <paramref name="model"/>.</summary>
    public static IReadOnlyDictionary<string, string> For(string provider, InferenceOptions options, ValidatedModel model) => provider switch
    {
        ExecutionProviders.TensorRt => TensorRt(options.TensorRt, model),
        ExecutionProviders.Cuda => Cuda(options.Cuda),
        ExecutionProviders.Cpu => new Dictionary<string, string>(),
        _ => throw new InvalidOperationException($"unknown execution provider '{provider}'"),
    };

    /// <summary>Appends <paramref name="provider"/> with <paramref name="settings"/> (from <see cref="For"/>) to
    /// <paramref name="so"/>. Throws what ONNX Runtime throws when the provider cannot be loaded.</summary>
    public static void Append(SessionOptions so, string provider, IReadOnlyDictionary<string, string> settings)
    {
        switch (provider)
        {
            case ExecutionProviders.TensorRt:
                {
                    using var trt = new OrtTensorRTProviderOptions();
                    trt.UpdateOptions(settings.ToDictionary());
                    so.AppendExecutionProvider_Tensorrt(trt);
                    break;
                }

            case ExecutionProviders.Cuda:
                {
                    using var cuda = new OrtCUDAProviderOptions();
                    cuda.UpdateOptions(settings.ToDictionary());
                    so.AppendExecutionProvider_CUDA(cuda);
                    break;
                }

            case ExecutionProviders.Cpu:
                break;
            default:
                throw new InvalidOperationException($"unknown execution provider '{provider}'");
        }
    }

    private static string Flag(bool on) => on ? "1" : "0";
}
