using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>Builds the byte streams of the bad-input corpus by hand where OpenCV's encoders cannot (PNG chunks with
/// hostile headers, a 20000x20000 PNG streamed row by row, a CMYK JPEG with an Adobe APP14 marker). Stateless and
/// thread-safe.</summary>
public static class ImageBytes
{
    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>A PNG made of the given chunks (signature prepended, CRCs computed).</summary>
    public static byte[] Png(params (string Type, byte[] Data)[] chunks)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        foreach (var (type, data) in chunks)
        {
            WriteChunk(ms, type, data);
        }

        return ms.ToArray();
    }

    /// <summary>IHDR data: width, height, bit depth, colour type (0 gray, 2 RGB, 6 RGBA), no interlace.</summary>
    public static byte[] Ihdr(uint width, uint height, byte bitDepth = 8, byte colorType = 0)
    {
        var d = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(d, width);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), height);
        d[8] = bitDepth;
        d[9] = colorType;
        return d;
    }

    /// <summary>A zlib stream of <paramref name="raw"/>.</summary>
    public static byte[] Zlib(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            z.Write(raw);
        }

        return ms.ToArray();
    }

    /// <summary>A complete, valid 8-bit grayscale PNG of <paramref name="side"/> x <paramref name="side"/> black pixels,
    /// compressed row by row so the test never holds the pixels (20000 x 20000 = 400 MB raw, about 0.4 MB encoded).</summary>
    public static byte[] HugeBlackPng(int side)
    {
        using var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
        {
            var row = new byte[side + 1]; // filter byte 0 + black pixels
            for (var y = 0; y < side; y++)
            {
                z.Write(row);
            }
        }

        return Png(("IHDR", Ihdr((uint)side, (uint)side)), ("IDAT", idat.ToArray()), ("IEND", []));
    }

    /// <summary>A JPEG header (SOI, SOF0) declaring <paramref name="width"/> x <paramref name="height"/>, then EOI:
    /// a decompression bomb by declared size.</summary>
    public static byte[] JpegDeclaring(ushort width, ushort height)
    {
        using var ms = new MemoryStream();
        ms.Write([0xFF, 0xD8]);
        ms.Write([0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        WriteU16(ms, height);
        WriteU16(ms, width);
        ms.Write([0x01, 0x01, 0x11, 0x00]);
        ms.Write([0xFF, 0xD9]);
        return ms.ToArray();
    }

    /// <summary>A baseline CMYK JPEG (4 components, Adobe APP14 with transform 0, inverted CMYK as Photoshop writes it)
    /// whose pixels are exactly known: every 8x8 block is coded by its DC term only, so it decodes to the block means of
    /// <paramref name="gray"/> (rounded). Returns the JPEG and that expected grayscale picture. OpenCV's encoder cannot
    /// write CMYK, hence the hand-made entropy coder. <paramref name="gray"/> must be 8-bit, one channel, sides a
    /// multiple of 8.</summary>
    public static (byte[] Jpeg, Mat Expected) CmykJpeg(Mat gray)
    {
        if (gray.Type() != MatType.CV_8UC1 || gray.Rows % 8 != 0 || gray.Cols % 8 != 0)
        {
            throw new ArgumentException("8-bit single-channel image with sides a multiple of 8 expected", nameof(gray));
        }

        int bw = gray.Cols / 8, bh = gray.Rows / 8;
        var means = new int[bh, bw];
        var expected = new Mat(gray.Rows, gray.Cols, MatType.CV_8UC1);
        for (var by = 0; by < bh; by++)
        {
            for (var bx = 0; bx < bw; bx++)
            {
                using var block = new Mat(gray, new Rect(bx * 8, by * 8, 8, 8));
                var mean = (int)Math.Round(block.Mean().Val0, MidpointRounding.AwayFromZero);
                means[by, bx] = mean;
                expected[new Rect(bx * 8, by * 8, 8, 8)].SetTo(new Scalar(mean));
            }
        }

        using var ms = new MemoryStream();
        ms.Write([0xFF, 0xD8]);
        // APP14 "Adobe": version 100, flags 0, 0, transform 0 (CMYK, not YCCK).
        ms.Write([0xFF, 0xEE, 0x00, 0x0E]);
        ms.Write("Adobe"u8);
        ms.Write([0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);
        // DQT table 0: DC quantiser 8, so a quantised DC of d reconstructs as d*8/8 + 128 exactly.
        ms.Write([0xFF, 0xDB, 0x00, 0x43, 0x00]);
        ms.WriteByte(8);
        for (var i = 1; i < 64; i++)
        {
            ms.WriteByte(1);
        }

        // SOF0: 8-bit, 4 components, no subsampling, all on table 0.
        ms.Write([0xFF, 0xC0]);
        WriteU16(ms, 8 + (4 * 3));
        ms.WriteByte(8);
        WriteU16(ms, (ushort)gray.Rows);
        WriteU16(ms, (ushort)gray.Cols);
        ms.WriteByte(4);
        for (byte c = 1; c <= 4; c++)
        {
            ms.Write([c, 0x11, 0x00]);
        }

        // DHT: the standard luminance DC table (class 0, id 0) and an AC table holding only EOB (class 1, id 0).
        byte[] dcBits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        byte[] dcVals = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        ms.Write([0xFF, 0xC4]);
        WriteU16(ms, (ushort)(2 + 1 + 16 + dcVals.Length + 1 + 16 + 1));
        ms.WriteByte(0x00);
        ms.Write(dcBits);
        ms.Write(dcVals);
        ms.WriteByte(0x10);
        ms.Write([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ms.WriteByte(0x00); // EOB, code "0"
        // SOS: 4 components, DC/AC tables 0, full spectral range.
        ms.Write([0xFF, 0xDA]);
        WriteU16(ms, 6 + (2 * 4));
        ms.WriteByte(4);
        for (byte c = 1; c <= 4; c++)
        {
            ms.Write([c, 0x00]);
        }

        ms.Write([0x00, 0x3F, 0x00]);
        var bits = new BitWriter(ms);
        var (dcCodes, dcLengths) = Canonical(dcBits, dcVals);
        var previous = new int[4];
        for (var by = 0; by < bh; by++)
        {
            for (var bx = 0; bx < bw; bx++)
            {
                // Inverted (Adobe) CMYK: C = M = Y = 255 means "no ink", K carries the gray level; OpenCV's conversion
                // gives R = G = B = K for that.
                var levels = new[] { 255, 255, 255, means[by, bx] };
                for (var c = 0; c < 4; c++)
                {
                    var dc = levels[c] - 128;
                    var diff = dc - previous[c];
                    previous[c] = dc;
                    var size = diff == 0 ? 0 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)Math.Abs(diff));
                    bits.Write(dcCodes[size], dcLengths[size]);
                    if (size > 0)
                    {
                        var v = diff > 0 ? diff : diff + (1 << size) - 1;
                        bits.Write(v, size);
                    }

                    bits.Write(0, 1); // EOB
                }
            }
        }

        bits.Flush();
        ms.Write([0xFF, 0xD9]);
        return (ms.ToArray(), expected);
    }

    /// <summary>Writes <paramref name="bytes"/> under a temporary name in <paramref name="folder"/>, then renames it to
    /// <paramref name="name"/> (how writers should drop files).</summary>
    public static string DropByRename(string folder, string name, byte[] bytes)
    {
        var part = Path.Combine(folder, ".tmp-" + Guid.NewGuid().ToString("N") + ".part");
        File.WriteAllBytes(part, bytes);
        var target = Path.Combine(folder, name);
        File.Move(part, target);
        return target;
    }

    private static (int[] Codes, int[] Lengths) Canonical(byte[] bits, byte[] vals)
    {
        var codes = new int[256];
        var lengths = new int[256];
        int code = 0, k = 0;
        for (var len = 1; len <= 16; len++)
        {
            for (var i = 0; i < bits[len - 1]; i++)
            {
                codes[vals[k]] = code++;
                lengths[vals[k]] = len;
                k++;
            }

            code <<= 1;
        }

        return (codes, lengths);
    }

    private static void WriteU16(Stream s, ushort v) => s.Write([(byte)(v >> 8), (byte)v]);

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        var crc = 0xFFFFFFFFu;
        foreach (var b in typeBytes.Concat(data))
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        var crcBytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crcBytes, crc ^ 0xFFFFFFFFu);
        s.Write(crcBytes);
    }

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            t[n] = c;
        }

        return t;
    }

    /// <summary>MSB-first bit writer with JPEG byte stuffing (0xFF is followed by 0x00); pads the last byte with ones.</summary>
    private sealed class BitWriter(Stream s)
    {
        private int _acc;
        private int _n;

        public void Write(int value, int count)
        {
            for (var i = count - 1; i >= 0; i--)
            {
                _acc = (_acc << 1) | ((value >> i) & 1);
                if (++_n == 8)
                {
                    Emit();
                }
            }
        }

        public void Flush()
        {
            while (_n != 0)
            {
                Write(1, 1);
            }
        }

        private void Emit()
        {
            s.WriteByte((byte)_acc);
            if (_acc == 0xFF)
            {
                s.WriteByte(0x00);
            }

            _acc = 0;
            _n = 0;
        }
    }
}
