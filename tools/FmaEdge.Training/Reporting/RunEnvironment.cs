using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FmaEdge.Training.Reporting;

/// <summary>What a seeded run's numbers depend on besides the seed and the data: the CPU (its model and the
/// instruction sets that pick libtorch's and oneDNN's kernels), the thread counts, and the library versions. Written
/// into history.json and report.json so two runs can be compared. Stateless and thread-safe.</summary>
public static class RunEnvironment
{
    /// <summary>CPU flags that change which math kernels libtorch, oneDNN and ONNX Runtime dispatch to.</summary>
    public static readonly IReadOnlyList<string> DispatchFlags =
        ["sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"];

    /// <summary>Environment variables that pin kernel dispatch or thread counts when set.</summary>
    public static readonly IReadOnlyList<string> DispatchVariables =
        ["ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS"];

    /// <summary>The packages whose versions are recorded (from the app's .deps.json).</summary>
    public static readonly IReadOnlyList<string> Packages =
        ["TorchSharp", "libtorch-cpu-linux-x64", "Microsoft.ML.OnnxRuntime.Managed", "Microsoft.ML.OnnxRuntime.Gpu.Linux", "OpenCvSharp4"];

    /// <summary>The environment of this process; <paramref name="torchThreads"/> and <paramref name="loaderThreads"/>
    /// as the run used them (null when not training).</summary>
    public static JsonObject Capture(int? torchThreads = null, int? loaderThreads = null)
    {
        var (model, flags) = ReadCpuInfo();
        var variables = new JsonObject();
        foreach (var v in DispatchVariables)
        {
            if (Environment.GetEnvironmentVariable(v) is { } value)
            {
                variables[v] = value;
            }
        }

        return new JsonObject
        {
            ["cpu_model"] = model,
            ["cpu_dispatch_flags"] = new JsonArray(DispatchFlags.Where(flags.Contains).Select(f => (JsonNode)JsonValue.Create(f)).ToArray()),
            ["logical_cores"] = Environment.ProcessorCount,
            ["torch_threads"] = torchThreads,
            ["loader_threads"] = loaderThreads,
            ["dispatch_variables"] = variables,
            ["os"] = RuntimeInformation.OSDescription,
            ["architecture"] = RuntimeInformation.ProcessArchitecture.ToString(),
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["packages"] = PackageVersions(),
        };
    }

    /// <summary>"model name" and the flags of the first processor in /proc/cpuinfo; ("unknown", empty) elsewhere.</summary>
    public static (string Model, IReadOnlySet<string> Flags) ReadCpuInfo(string path = "/proc/cpuinfo")
    {
        try
        {
            var lines = File.ReadLines(path).TakeWhile(l => l.Length > 0).ToList();
            string? Field(string name) => lines.Where(l => l.StartsWith(name, StringComparison.Ordinal) && l.Contains(':', StringComparison.Ordinal))
                .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()).FirstOrDefault();
            var flags = (Field("flags") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            return (Field("model name") ?? "unknown", flags);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ("unknown", new HashSet<string>());
        }
    }

    /// <summary>Versions of <see cref="Packages"/> this process was built against, from its .deps.json files.</summary>
    public static JsonObject PackageVersions()
    {
        var versions = new JsonObject();
        // The host names the app's deps files; a test host names its own, so the app folder's are read too.
        var files = (AppContext.GetData("APP_CONTEXT_DEPS_FILES") as string ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(Directory.EnumerateFiles(AppContext.BaseDirectory, "*.deps.json").Order(StringComparer.Ordinal));
        foreach (var file in files.Where(File.Exists).Distinct(StringComparer.Ordinal))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
                if (!doc.RootElement.TryGetProperty("libraries", out var libraries))
                {
                    continue;
                }

                foreach (var lib in libraries.EnumerateObject())
                {
                    var slash = lib.Name.IndexOf('/', StringComparison.Ordinal);
                    var name = slash > 0 ? lib.Name[..slash] : lib.Name;
                    if (slash > 0 && Packages.Contains(name, StringComparer.OrdinalIgnoreCase) && !versions.ContainsKey(name))
                    {
                        versions[name] = lib.Name[(slash + 1)..];
                    }
                }
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                // A deps file we cannot read only loses the versions it would have named.
            }
        }

        return versions;
    }
}
