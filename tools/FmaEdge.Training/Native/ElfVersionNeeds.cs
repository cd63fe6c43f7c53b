// One file, two uses: compiled into FmaEdge.Training (FMAEDGE_TRAINING_LIB defined) for the runtime check,
// and compiled by MSBuild's RoslynCodeTaskFactory (symbol not defined) as the build task that patches
// libLibTorchSharp.so after build and publish. Keep it to plain BCL C# so both compilers accept it.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace FmaEdge.Training.Native;

/// <summary>Reads and edits the GNU version-need table of an ELF64 little-endian shared library: lists
/// the symbol versions it needs and marks chosen ones weak, so the dynamic loader no longer refuses the
/// library when the system library lacks that version. A version is only weakened when no relocation
/// refers to a symbol bound to it (so nothing can ever be resolved against it). Stateless; thread-safe.</summary>
public static class ElfVersionNeeds
{
    private const uint ShtRela = 4;
    private const uint ShtRel = 9;
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;

    /// <summary>VER_FLG_WEAK: a missing version is not fatal (glibc dl-version.c).</summary>
    public const ushort WeakFlag = 0x2;

    /// <summary>One needed version: library file, version name, flags, and how many relocations use it.</summary>
    public sealed class Need
    {
        public Need(string file, string name, ushort flags, ushort index, long flagsOffset, int relocations)
        {
            File = file;
            Name = name;
            Flags = flags;
            Index = index;
            FlagsOffset = flagsOffset;
            Relocations = relocations;
        }

        public string File { get; }
        public string Name { get; }
        public ushort Flags { get; }
        public ushort Index { get; }
        public long FlagsOffset { get; }
        public int Relocations { get; }
        public bool IsWeak => (Flags & WeakFlag) != 0;
    }

    /// <summary>Every version need of the library. Throws <see cref="InvalidDataException"/> for a file that is
    /// not a 64-bit little-endian ELF.</summary>
    public static List<Need> Read(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException("not an ELF file");
        }

        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException("only 64-bit little-endian ELF files are supported");
        }

        var shoff = (long)U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A);
        int shnum = U16(elf, 0x3C);
        var sections = new List<(uint Type, long Offset, long Size, uint Link, long EntSize)>();
        for (var i = 0; i < shnum; i++)
        {
            var h = shoff + ((long)i * shentsize);
            sections.Add((U32(elf, h + 4), (long)U64(elf, h + 24), (long)U64(elf, h + 32), U32(elf, h + 40), (long)U64(elf, h + 56)));
        }

        // Which version index each dynamic symbol carries, and which symbols relocations touch.
        var dynsym = sections.FindIndex(s => s.Type == ShtDynsym);
        var versym = sections.FindIndex(s => s.Type == ShtGnuVersym);
        var relocCountByVersion = new Dictionary<int, int>();
        if (dynsym >= 0 && versym >= 0)
        {
            var vs = sections[versym];
            var nsyms = (int)(vs.Size / 2);
            for (var s = 0; s < sections.Count; s++)
            {
                var sec = sections[s];
                if ((sec.Type != ShtRela && sec.Type != ShtRel) || sec.Link != dynsym)
                {
                    continue;
                }

                long entsize = sec.EntSize > 0 ? sec.EntSize : (sec.Type == ShtRela ? 24 : 16);
                for (var off = sec.Offset; off + entsize <= sec.Offset + sec.Size; off += entsize)
                {
                    var sym = (int)(U64(elf, off + 8) >> 32);
                    if (sym > 0 && sym < nsyms)
                    {
                        var ver = U16(elf, vs.Offset + (sym * 2)) & 0x7fff;
                        relocCountByVersion[ver] = relocCountByVersion.TryGetValue(ver, out var c) ? c + 1 : 1;
                    }
                }
            }
        }

        var result = new List<Need>();
        var verneed = sections.FindIndex(s => s.Type == ShtGnuVerneed);
        if (verneed < 0)
        {
            return result;
        }

        var vn = sections[verneed];
        var strtab = sections[(int)vn.Link].Offset;
        var entry = vn.Offset;
        while (true)
        {
            int cnt = U16(elf, entry + 2);
            var file = Str(elf, strtab + U32(elf, entry + 4));
            var aux = entry + U32(elf, entry + 8);
            for (var a = 0; a < cnt; a++)
            {
                var flags = U16(elf, aux + 4);
                var index = U16(elf, aux + 6);
                var name = Str(elf, strtab + U32(elf, aux + 8));
                result.Add(new Need(file, name, flags, index, aux + 4, relocCountByVersion.TryGetValue(index & 0x7fff, out var r) ? r : 0));
                var nextAux = U32(elf, aux + 12);
                if (nextAux == 0)
                {
                    break;
                }

                aux += nextAux;
            }

            var next = U32(elf, entry + 12);
            if (next == 0)
            {
                break;
            }

            entry += next;
        }

        return result;
    }

    /// <summary>Marks the named versions weak in place. Returns the names changed (already-weak ones are
    /// skipped). Throws <see cref="InvalidOperationException"/> when a named version is used by a
    /// relocation, because weakening it would turn a load error into a crash later.</summary>
    public static List<string> MakeWeak(byte[] elf, ICollection<string> versionNames)
    {
        var changed = new List<string>();
        foreach (var need in Read(elf))
        {
            if (!versionNames.Contains(need.Name) || need.IsWeak)
            {
                continue;
            }

            if (need.Relocations > 0)
            {
                throw new InvalidOperationException(
                    $"version {need.Name} of {need.File} is used by {need.Relocations} relocation(s); it cannot safely be made weak");
            }

            var flags = (ushort)(need.Flags | WeakFlag);
            elf[need.FlagsOffset] = (byte)(flags & 0xff);
            elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
            changed.Add(need.Name);
        }

        return changed;
    }

    /// <summary>Patches a file atomically (temp file + rename, so a hard link into a package cache is never
    /// written through). Returns the names changed; an empty list leaves the file untouched.</summary>
    public static List<string> PatchFile(string path, ICollection<string> versionNames)
    {
        var bytes = System.IO.File.ReadAllBytes(path);
        var changed = MakeWeak(bytes, versionNames);
        if (changed.Count == 0)
        {
            return changed;
        }

        var tmp = path + ".fmaedge-tmp";
        System.IO.File.WriteAllBytes(tmp, bytes);
#if FMAEDGE_TRAINING_LIB
        if (!OperatingSystem.IsWindows())
        {
            System.IO.File.SetUnixFileMode(tmp, System.IO.File.GetUnixFileMode(path));
        }
#endif

        // File.Replace is a rename on Unix (atomic; breaks any hard link instead of writing through it).
        System.IO.File.Replace(tmp, path, null);
        return changed;
    }

    private static ushort U16(byte[] b, long o) => (ushort)(b[o] | (b[o + 1] << 8));

    private static uint U32(byte[] b, long o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));

    private static ulong U64(byte[] b, long o) => U32(b, o) | ((ulong)U32(b, o + 4) << 32);

    private static string Str(byte[] b, long o)
    {
        var end = o;
        while (end < b.Length && b[end] != 0)
        {
            end++;
        }

        return Encoding.ASCII.GetString(b, (int)o, (int)(end - o));
    }
}

#if !FMAEDGE_TRAINING_LIB
/// <summary>MSBuild task: marks the given version needs of each file weak (see build/FmaEdge.TorchNative.targets).</summary>
public sealed class WeakenElfVersionNeeds : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    [Microsoft.Build.Framework.Required]
    public string Versions { get; set; } = "";

    public override bool Execute()
    {
        var names = new HashSet<string>(Versions.Split(new[] { ';', ',' }, StringSplitOptions.RemoveEmptyEntries));
        foreach (var item in Files)
        {
            try
            {
                var changed = ElfVersionNeeds.PatchFile(item.ItemSpec, names);
                if (changed.Count > 0)
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                        "FmaEdge: marked " + string.Join(", ", changed) + " weak in " + item.ItemSpec);
                }
            }
            catch (Exception e)
            {
                Log.LogError("FmaEdge: cannot patch " + item.ItemSpec + ": " + e.Message);
            }
        }

        return !Log.HasLoggedErrors;
    }
}
#endif
