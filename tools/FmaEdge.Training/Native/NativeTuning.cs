using System.Runtime.InteropServices;

namespace FmaEdge.Training.Native;

/// <summary>Process-wide native memory settings applied once, before libtorch allocates. Thread-safe (called
/// under <see cref="TorchNative"/>'s lock).</summary>
public static partial class NativeTuning
{
    private const int MTrimThreshold = -1;
    private const int MMmapMax = -4;

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("FMATRAIN_DEFAULT_MALLOC") == "1")
        {
            return;
        }

        try
        {
            // A training step allocates and frees ~100 MB of activations. glibc serves blocks above its mmap
            // threshold with fresh mmaps and unmaps them on free, so every step page-faults and zeroes them
            // again (perf: ~13 % of CPU in the kernel). Keeping freed memory in the heap instead made the
            // reference recipe 1.8x faster on the dev machine (docs/training.md, Speed); peak memory is unchanged.
            _ = Mallopt(MMmapMax, 0);
            _ = Mallopt(MTrimThreshold, int.MaxValue);
        }
        catch (EntryPointNotFoundException)
        {
            // Not glibc (e.g. musl): keep its defaults.
        }
        catch (DllNotFoundException)
        {
        }
    }

    /// <summary>Turns libtorch's oneDNN (mkldnn) CPU kernels on or off for the whole process (at::Context's
    /// userEnabledMkldnn, which TorchSharp does not expose). Returns the previous setting.</summary>
    public static bool SetOneDnn(bool enabled)
    {
        var context = GlobalContext();
        var previous = UserEnabledMkldnn(context) != 0;
        SetUserEnabledMkldnn(context, enabled ? (byte)1 : (byte)0);
        // Without oneDNN libtorch tries NNPACK for convolutions, which this CPU does not support: it would warn on
        // every convolution ("Could not initialize NNPACK! Reason: Unsupported hardware"), thousands of lines a run.
        SetUserEnabledNnpack(context, enabled ? (byte)1 : (byte)0);
        return previous;
    }

    [LibraryImport("torch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

    [LibraryImport("torch_cpu", EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
    private static partial byte UserEnabledMkldnn(IntPtr context);

    [LibraryImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
    private static partial void SetUserEnabledMkldnn(IntPtr context, byte enabled);

    [LibraryImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static partial void SetUserEnabledNnpack(IntPtr context, byte enabled);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);
}
