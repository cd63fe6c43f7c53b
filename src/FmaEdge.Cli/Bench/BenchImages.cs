using System.Buffers.Binary;
using System.Text;

namespace FmaEdge.Cli.Bench;

/// <summary>Makes copies of real images whose bytes (and so SHA-256) differ while the pixels stay the same: a PNG text
/// chunk or a JPEG comment carrying a tag. The daemon recognises repeated content as a duplicate and skips inference,
/// so a benchmark or soak that copies a few real images many times needs distinct bytes. Stateless and thread-safe.</summary>
public static class BenchImages
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] CrcTable = MakeCrcTable();

    /// <summary>Real images (png, jpg, jpeg) under <paramref name="folder"/>, any depth, in a stable order.</summary>
    public static IReadOnlyList<string> Find(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg")
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}done{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The bytes of <paramref name="image"/> (PNG or JPEG) with <paramref name="tag"/> embedded where decoders
    /// ignore it. Throws <see cref="InvalidDataException"/> for other formats.</summary>
    public static byte[] Tag(byte[] image, string tag)
    {
        var text = Encoding.ASCII.GetBytes(tag);
        if (image.AsSpan().StartsWith(PngSignature))
        {
            // Insert a tEXt chunk right after IHDR (signature 8 + length 4 + type 4 + 13 data + crc 4 = 33 bytes).
            const int afterIhdr = 33;
            var data = new byte["fmaedge".Length + 1 + text.Length];
            Encoding.ASCII.GetBytes("fmaedge", data);
            text.CopyTo(data, "fmaedge".Length + 1);
            var chunk = new byte[12 + data.Length];
            BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
            Encoding.ASCII.GetBytes("tEXt", chunk.AsSpan(4));
            data.CopyTo(chunk, 8);
            BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
            return [.. image.AsSpan(0, afterIhdr), .. chunk, .. image.AsSpan(afterIhdr)];
        }

        if (image.Length > 2 && image[0] == 0xFF && image[1] == 0xD8)
        {
            // A COM segment right after SOI; its length field counts itself.
            var segment = new byte[4 + text.Length];
            segment[0] = 0xFF;
            segment[1] = 0xFE;
            BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), checked((ushort)(2 + text.Length)));
            text.CopyTo(segment, 4);
            return [.. image.AsSpan(0, 2), .. segment, .. image.AsSpan(2)];
        }

        throw new InvalidDataException("only PNG and JPEG images can be tagged");
    }

    /// <summary>Writes <paramref name="count"/> tagged copies of <paramref name="sources"/> (round robin) into
    /// <paramref name="folder"/> as <c>{prefix}{n:D6}-{original name}</c>; returns the written paths in order.</summary>
    public static IReadOnlyList<string> Stage(IReadOnlyList<string> sources, string folder, int count, string prefix)
    {
        if (sources.Count == 0)
        {
            throw new ArgumentException("no source images", nameof(sources));
        }

        Directory.CreateDirectory(folder);
        var cache = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var written = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            var src = sources[i % sources.Count];
            if (!cache.TryGetValue(src, out var bytes))
            {
                bytes = File.ReadAllBytes(src);
                if (cache.Count < 4096)
                {
                    cache[src] = bytes;
                }
            }

            var name = $"{prefix}{i:D6}-{Path.GetFileName(src)}";
            var path = Path.Combine(folder, name);
            File.WriteAllBytes(path, Tag(bytes, $"{prefix}{i}"));
            written.Add(path);
        }

        return written;
    }

    /// <summary>Writes <paramref name="count"/> camera-sized images (<paramref name="width"/> x <paramref name="height"/>,
    /// 8-bit grayscale like the defect set) made from real images spread over <paramref name="sources"/> by cubic
    /// resizing, as PNG or JPEG quality 90 (<paramref name="format"/> "png" or "jpeg"); returns their paths.</summary>
    public static IReadOnlyList<string> MakeLarge(IReadOnlyList<string> sources, string folder, string format, int count, int width, int height)
    {
        if (sources.Count == 0)
        {
            throw new ArgumentException("no source images", nameof(sources));
        }

        var (ext, prms) = format switch
        {
            "png" => (".png", Array.Empty<OpenCvSharp.ImageEncodingParam>()),
            "jpeg" => (".jpg", [new OpenCvSharp.ImageEncodingParam(OpenCvSharp.ImwriteFlags.JpegQuality, 90)]),
            _ => throw new ArgumentException($"format '{format}' is not png or jpeg", nameof(format)),
        };
        Directory.CreateDirectory(folder);
        var written = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            var src = sources[(int)((long)i * sources.Count / count)];
            using var gray = OpenCvSharp.Cv2.ImRead(src, OpenCvSharp.ImreadModes.Grayscale);
            if (gray.Empty())
            {
                throw new InvalidDataException($"cannot read {src} as an image");
            }

            using var large = new OpenCvSharp.Mat();
            OpenCvSharp.Cv2.Resize(gray, large, new OpenCvSharp.Size(width, height), 0, 0, OpenCvSharp.InterpolationFlags.Cubic);
            var path = Path.Combine(folder, Path.GetFileNameWithoutExtension(src) + ext);
            OpenCvSharp.Cv2.ImEncode(ext, large, out var bytes, prms);
            File.WriteAllBytes(path, bytes);
            written.Add(path);
        }

        return written;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc ^ 0xFFFFFFFFu;
    }

    private static uint[] MakeCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
