using System.Text.RegularExpressions;

namespace FmaEdge.Daemon.Configuration;

/// <summary>Checks a bound <see cref="FmaEdgeOptions"/> and lists every problem at once (key path + why), so an
/// operator fixes a config in one round. Stateless and thread-safe.</summary>
public static partial class FmaEdgeOptionsValidator
{
    private static readonly string[] KnownProviders = ["tensorrt", "cuda", "cpu"];

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex IdPattern();

    /// <summary>Every violation found; empty when the options are usable.</summary>
    public static IReadOnlyList<string> Validate(FmaEdgeOptions o)
    {
        var e = new ConfigErrors();
        const string p = FmaEdgeOptions.Section;

        if (o.NodeName.Length > 0 && !IdPattern().IsMatch(o.NodeName))
        {
            e.Add($"{p}:NodeName '{o.NodeName}' must be 1-64 of A-Z a-z 0-9 _ - (it becomes an MQTT topic level)");
        }

        var inf = o.Inference;
        var providers = inf.ProviderList;
        if (providers.Count == 0)
        {
            e.Add($"{p}:Inference:Providers is empty; list at least \"cpu\"");
        }

        foreach (var provider in providers.Where(x => !KnownProviders.Contains(x, StringComparer.OrdinalIgnoreCase)))
        {
            e.Add($"{p}:Inference:Providers '{provider}' is not one of tensorrt, cuda, cpu");
        }

        if (providers.Distinct(StringComparer.OrdinalIgnoreCase).Count() != providers.Count)
        {
            e.Add($"{p}:Inference:Providers lists a provider twice");
        }

        e.Range($"{p}:Inference:CudaDevice", inf.CudaDevice, 0, 15);
        e.Range($"{p}:Inference:IntraOpThreads", inf.IntraOpThreads, 0, 256);
        e.Range($"{p}:Inference:InterOpThreads", inf.InterOpThreads, 0, 256);
        e.Range($"{p}:Inference:OtherThreadsNice", inf.OtherThreadsNice, 0, 19);
        e.Range($"{p}:Inference:MaxBatch", inf.MaxBatch, 1, 256);
        e.Range($"{p}:Inference:ConcurrentBatches", inf.ConcurrentBatches, 0, 256);
        e.Range($"{p}:Inference:BatchFillMs", inf.BatchFillMs, 0, 10_000);
        e.Range($"{p}:Inference:WarmUpRuns", inf.WarmUpRuns, 0, 100);
        e.Range($"{p}:Inference:TensorRt:WorkspaceMiB", inf.TensorRt.WorkspaceMiB, 64, 65536);
        e.Range($"{p}:Inference:TensorRt:OptBatch", inf.TensorRt.OptBatch, 1, Math.Max(1, inf.MaxBatch));
        e.Range($"{p}:Inference:TensorRt:BuilderOptimizationLevel", inf.TensorRt.BuilderOptimizationLevel, 0, 5);
        e.Range($"{p}:Inference:TensorRt:DlaCore", inf.TensorRt.DlaCore, -1, 1);
        e.Range($"{p}:Inference:CudaMemoryLimitMiB", inf.CudaMemoryLimitMiB, 0, 1 << 20);

        e.Range($"{p}:Models:StableMs", o.Models.StableMs, 50, 600_000);
        if (o.Models.Active.Length > 0 && !o.Models.Active.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            e.Add($"{p}:Models:Active '{o.Models.Active}' must name an .onnx file");
        }

        var pl = o.Pipeline;
        e.Range($"{p}:Pipeline:InputCapacity", pl.InputCapacity, 1, 10_000);
        e.Range($"{p}:Pipeline:DecodeWorkers", pl.DecodeWorkers, 0, 256);
        e.Range($"{p}:Pipeline:InferCapacity", pl.InferCapacity, 1, 10_000);
        e.Range($"{p}:Pipeline:PublishCapacity", pl.PublishCapacity, 1, 10_000);
        e.Range($"{p}:Pipeline:StallSeconds", pl.StallSeconds, 5, 3600);
        e.Range($"{p}:Pipeline:MaxImageBytes", pl.MaxImageBytes, 1024, 2L * 1024 * 1024 * 1024);

        if (o.Output.Type == OutputType.Mqtt)
        {
            foreach (var x in o.Mqtt.Validate())
            {
                e.Add($"{p}:Mqtt: {x}");
            }
        }

        e.Range($"{p}:Status:IntervalSeconds", o.Status.IntervalSeconds, 1, 3600);
        e.Range($"{p}:Status:StatsSeconds", o.Status.StatsSeconds, 1, 86400);
        if (o.Status.Socket.Length > 100)
        {
            e.Add($"{p}:Status:Socket is {o.Status.Socket.Length} characters; Unix socket paths must stay under 108 bytes");
        }

        e.Range($"{p}:Health:DiskFloorMiB", o.Health.DiskFloorMiB, 0, 1_000_000);
        e.Range($"{p}:Metrics:Port", o.Metrics.Port, 1, 65535);
        if (!System.Net.IPAddress.TryParse(o.Metrics.BindAddress, out _))
        {
            e.Add($"{p}:Metrics:BindAddress '{o.Metrics.BindAddress}' must be an IP address (127.0.0.1, 0.0.0.0 for every interface)");
        }

        if (o.Logging.Level is not ("Verbose" or "Debug" or "Information" or "Warning" or "Error"))
        {
            e.Add($"{p}:Logging:Level '{o.Logging.Level}' is not Verbose, Debug, Information, Warning or Error");
        }

        e.Range($"{p}:Logging:RetainedFiles", o.Logging.RetainedFiles, 1, 365);

        var ids = new HashSet<string>(StringComparer.Ordinal);
        var folders = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < o.Sources.Count; i++)
        {
            ValidateSource(e, $"{p}:Sources:{i}", o.Sources[i], ids, folders);
        }

        return e.All;
    }

    private static void ValidateSource(ConfigErrors e, string k, SourceOptions s, HashSet<string> ids, HashSet<string> folders)
    {
        if (!IdPattern().IsMatch(s.Id))
        {
            e.Add($"{k}:Id '{s.Id}' must be 1-64 of A-Z a-z 0-9 _ - (it becomes an MQTT topic level)");
        }
        else if (!ids.Add(s.Id))
        {
            e.Add($"{k}:Id '{s.Id}' is used by another source");
        }

        if (Sources.SourceTypes.All.TryGetValue(s.Type, out var type))
        {
            type.Validate(s, k, e, folders);
        }
        else
        {
            e.Add($"{k}:Type '{s.Type}' is not {string.Join(" or ", Sources.SourceTypes.All.Keys)}");
        }
    }
}

/// <summary>Thrown when configuration is unusable; <see cref="Errors"/> lists every problem.</summary>
public sealed class ConfigurationErrorsException(IReadOnlyList<string> errors)
    : Exception("invalid configuration:\n  - " + string.Join("\n  - ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
