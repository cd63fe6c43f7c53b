using FmaEdge.Training.Native;

namespace FmaEdge.Training.Tests;

public class NativeTests
{
    [Fact]
    public void LibTorchSharpInOutput_NeedsNoLibStdCxxVersionTheSystemLacks()
    {
        TorchNative.EnsureLoaded();
        var lib = TorchNative.FindLibTorchSharp();
        Assert.NotNull(lib);
        var needs = ElfVersionNeeds.Read(File.ReadAllBytes(lib));
        Assert.Contains(needs, n => n.Name == "GLIBCXX_3.4.21");
        var unmet = needs.Where(n => n.File == "libstdc++.so.6" && !n.IsWeak && !TorchNative.SystemLibStdCxxHas(n.Name)).Select(n => n.Name).ToList();
        Assert.Empty(unmet);
    }

    [Fact]
    public void MakeWeak_StrongUnusedNeed_SetsWeakFlagOnceAndRefusesRelocatedVersions()
    {
        var bytes = File.ReadAllBytes(TorchNative.FindLibTorchSharp()!);
        var target = ElfVersionNeeds.Read(bytes).First(n => n.Name == "GLIBCXX_3.4.32");
        // Undo the build-time patch on a copy to see the patcher do its work.
        bytes[target.FlagsOffset] &= unchecked((byte)~ElfVersionNeeds.WeakFlag);
        Assert.False(ElfVersionNeeds.Read(bytes).First(n => n.Name == "GLIBCXX_3.4.32").IsWeak);

        Assert.Equal(["GLIBCXX_3.4.32"], ElfVersionNeeds.MakeWeak(bytes, ["GLIBCXX_3.4.32"]));
        Assert.True(ElfVersionNeeds.Read(bytes).First(n => n.Name == "GLIBCXX_3.4.32").IsWeak);
        Assert.Empty(ElfVersionNeeds.MakeWeak(bytes, ["GLIBCXX_3.4.32"]));
        // GLIBCXX_3.4 carries real, relocated symbols: weakening it would only defer a crash.
        Assert.Throws<InvalidOperationException>(() => ElfVersionNeeds.MakeWeak(bytes, ["GLIBCXX_3.4"]));
    }
}
