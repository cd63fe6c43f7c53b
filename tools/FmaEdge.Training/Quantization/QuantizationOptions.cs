using System.Globalization;
using FmaEdge.Core.Contract;

namespace FmaEdge.Training.Quantization;

/// <summary>How activations are stored in int8 form.</summary>
public enum ActivationScheme
{
    /// <summary>int8, zero point 0: what TensorRT's explicit quantization (and its DLA cores) accept; ONNX Runtime's
    /// x86 CPU path converts it to its uint8 kernels itself.</summary>
    Int8Symmetric,

    /// <summary>uint8 with a zero point: one more bit for one-sided ranges; CPU only (TensorRT refuses it).</summary>
    UInt8Asymmetric,
}

/// <summary>How an activation's range is chosen from what the calibration images produced.</summary>
public enum RangeMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,

    /// <summary>The <see cref="QuantizationOptions.Percentile"/> of the values seen on each side: a few outliers do not
    /// stretch the scale for every other value.</summary>
    Percentile,
}

/// <summary>How <see cref="ModelQuantizer"/> quantizes a model. Immutable; checked by <see cref="Validate"/>.</summary>
public sealed record QuantizationOptions
{
    /// <summary>Images (spread over the leaves) whose activations set the ranges.</summary>
    public int CalibrationImages { get; init; } = 256;

    public RangeMethod Method { get; init; } = RangeMethod.Percentile;

    /// <summary>For <see cref="RangeMethod.Percentile"/>: the share of values (in %) the range keeps on each side.</summary>
    public double Percentile { get; init; } = 99.99;

    public ActivationScheme Activations { get; init; } = ActivationScheme.Int8Symmetric;

    /// <summary>Quantize the last layers too (those with no quantized layer after them: the classifier heads). Off by
    /// default: they cost little and their rounding goes straight into the logits the thresholds were fitted on.</summary>
    public bool QuantizeLastLayers { get; init; }

    /// <summary>Images per ONNX Runtime call when evaluating on validation images.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Smallest share of verification images on which the quantized model's top-1 class must equal the float
    /// model's, at every level; below it nothing is written.</summary>
    public double MinAgreement { get; init; } = 0.9;

    /// <summary>Model id of the quantized model; default: the source's id + "-int8".</summary>
    public string? Id { get; init; }

    public IProgress<(int Done, int Total)>? Progress { get; init; }

    /// <summary>The manifest's name of the activation scheme.</summary>
    public string ActivationName => Activations == ActivationScheme.Int8Symmetric ? "int8-symmetric" : "uint8-asymmetric";

    /// <summary>The manifest's name of the range method.</summary>
    public string MethodName => Method == RangeMethod.MinMax ? "minmax" : "percentile";

    /// <summary>Every problem with these options, one sentence each (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (CalibrationImages < 1)
        {
            errors.Add($"calibration images must be at least 1 (got {CalibrationImages})");
        }

        if (Method == RangeMethod.Percentile && !(Percentile > 50 && Percentile <= 100))
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"percentile {Percentile} is outside (50, 100]"));
        }

        if (BatchSize < 1)
        {
            errors.Add($"batch size must be at least 1 (got {BatchSize})");
        }

        if (!(MinAgreement >= 0 && MinAgreement <= 1))
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"minimum agreement {MinAgreement} is outside [0, 1]"));
        }

        return errors;
    }

    /// <summary>Parses "int8" / "uint8" (the CLI's names).</summary>
    public static ActivationScheme ParseActivations(string s) => s.Trim().ToLowerInvariant() switch
    {
        "int8" or "int8-symmetric" => ActivationScheme.Int8Symmetric,
        "uint8" or "uint8-asymmetric" => ActivationScheme.UInt8Asymmetric,
        _ => throw new ArgumentException($"unknown activation type '{s}' (int8 or uint8)"),
    };

    /// <summary>Parses "minmax" / "percentile".</summary>
    public static RangeMethod ParseMethod(string s) => s.Trim().ToLowerInvariant() switch
    {
        "minmax" => RangeMethod.MinMax,
        "percentile" => RangeMethod.Percentile,
        _ => throw new ArgumentException($"unknown range method '{s}' (minmax or percentile)"),
    };

    /// <summary>The spec written into the quantized model's manifest.</summary>
    internal QuantizationSpec Describe(int images, Dictionary<string, int> quantizedOps, List<string> keptFloat, string sourceSha256) => new()
    {
        Weights = "int8-symmetric-per-channel",
        Activations = ActivationName,
        Method = MethodName,
        Percentile = Method == RangeMethod.Percentile ? Percentile : null,
        CalibrationImages = images,
        QuantizedOps = quantizedOps,
        KeptFloat = keptFloat,
        SourceSha256 = sourceSha256,
    };
}
