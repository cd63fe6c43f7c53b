using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;

namespace FmaEdge.Training.Native;

/// <summary>TorchSharp's native library failed to load; the message says why and what to do.</summary>
public sealed class TorchNativeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Loads TorchSharp's native libraries once, repairing the known libstdc++ version mismatch on older
/// distributions (see build/FmaEdge.TorchNative.targets) and turning TorchSharp's misleading load errors into
/// a clear one. Thread-safe; every entry point of the trainer calls <see cref="EnsureLoaded"/> first.</summary>
public static class TorchNative
{
    /// <summary>libstdc++ symbol versions LibTorchSharp may ask for only for unused symbols.</summary>
    public static readonly IReadOnlySet<string> WeakenableVersions =
        new HashSet<string>(["GLIBCXX_3.4.31", "GLIBCXX_3.4.32", "GLIBCXX_3.4.33"], StringComparer.Ordinal);

    private static readonly Lock Gate = new();
    private static volatile bool _loaded;

    /// <summary>Makes sure libtorch and LibTorchSharp are loaded and working (a tiny tensor op runs).
    /// Throws <see cref="TorchNativeException"/> with a diagnosis when they cannot be.</summary>
    public static void EnsureLoaded()
    {
        if (_loaded)
        {
            return;
        }

        lock (Gate)
        {
            if (_loaded)
            {
                return;
            }

            var lib = FindLibTorchSharp();
            string? healNote = null;
            if (lib is not null && OperatingSystem.IsLinux())
            {
                healNote = TryHeal(lib);
            }

            NativeTuning.Apply();
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
                using var probe = torch.ones(2) + 1;
                if (probe.sum().item<float>() != 4f)
                {
                    throw new TorchNativeException("TorchSharp loaded but a test computation gave a wrong result");
                }
            }
            catch (Exception e) when (e is not TorchNativeException)
            {
                throw new TorchNativeException(Diagnose(lib, healNote, e), e);
            }

            _loaded = true;
        }
    }

    /// <summary>The libLibTorchSharp.so the runtime will load (beside the app or under runtimes/), or null.</summary>
    public static string? FindLibTorchSharp()
    {
        var baseDir = AppContext.BaseDirectory;
        string[] candidates =
        [
            Path.Combine(baseDir, "libLibTorchSharp.so"),
            Path.Combine(baseDir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
        ];
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>True when the system libstdc++ defines the given symbol version (GLIBCXX_3.4.32, ...).</summary>
    public static bool SystemLibStdCxxHas(string version)
    {
        string[] candidates =
        [
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        ];
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null)
        {
            return false;
        }

        var needle = Encoding.ASCII.GetBytes(version + "\0");
        return File.ReadAllBytes(path).AsSpan().IndexOf(needle) >= 0;
    }

    /// <summary>Weakens unsatisfiable, unused version needs in place when the build step did not run (e.g. a
    /// project that forgot to import the targets). Returns a note for the error message, or null.</summary>
    private static string? TryHeal(string lib)
    {
        try
        {
            var strong = ElfVersionNeeds.Read(File.ReadAllBytes(lib))
                .Where(n => !n.IsWeak && WeakenableVersions.Contains(n.Name) && !SystemLibStdCxxHas(n.Name))
                .Select(n => n.Name)
                .ToHashSet(StringComparer.Ordinal);
            if (strong.Count == 0)
            {
                return null;
            }

            var changed = ElfVersionNeeds.PatchFile(lib, strong);
            return changed.Count > 0 ? $"marked {string.Join(", ", changed)} weak in {lib} at run time" : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or InvalidDataException)
        {
            return $"could not patch {lib} ({e.Message})";
        }
    }

    private static string Diagnose(string? lib, string? healNote, Exception e)
    {
        var sb = new StringBuilder("TorchSharp's native library could not be loaded.");
        if (lib is null)
        {
            sb.Append(" libLibTorchSharp.so was not found beside the application (expected in ")
              .Append(AppContext.BaseDirectory).Append(" or its runtimes/linux-x64/native/): is the libtorch-cpu-linux-x64 package referenced?");
        }
        else
        {
            try
            {
                var missing = ElfVersionNeeds.Read(File.ReadAllBytes(lib))
                    .Where(n => !n.IsWeak && n.Name.StartsWith("GLIBCXX_", StringComparison.Ordinal) && !SystemLibStdCxxHas(n.Name))
                    .Select(n => n.Name).ToList();
                if (missing.Count > 0)
                {
                    sb.Append(' ').Append(lib).Append(" needs ").Append(string.Join(", ", missing))
                      .Append(" which the system libstdc++ lacks; rebuild with build/FmaEdge.TorchNative.targets imported, or make the file writable so it can be patched at start-up.");
                }
            }
            catch (Exception inner) when (inner is IOException or InvalidDataException)
            {
                sb.Append(" (could not inspect ").Append(lib).Append(": ").Append(inner.Message).Append(')');
            }
        }

        if (healNote is not null)
        {
            sb.Append(" Repair attempt: ").Append(healNote).Append('.');
        }

        if (!RuntimeInformation.ProcessArchitecture.Equals(Architecture.X64))
        {
            sb.Append(" The trainer needs x86-64 (libtorch has no linux-arm64 package).");
        }

        sb.Append(" Underlying error: ").Append(e.GetBaseException().Message);
        return sb.ToString();
    }
}
