using System.Buffers.Binary;

namespace FmaEdge.Vision;

/// <summary>Reads format and declared size from an image header without decoding pixels, so a
/// decompression bomb is refused before any memory is spent on it. Stateless and thread-safe.</summary>
public static class ImageHeader
{
    /// <summary>Known container formats.</summary>
    public enum Format { Unknown, Png, Jpeg, Bmp, Tiff, WebP }

    /// <summary>Recognises the format from magic bytes and reads the declared width and height
    /// (0 when the header is too short to say).</summary>
    public static (Format Format, long Width, long Height) Read(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 8 && b[0] == 0x89 && b[1] == (byte)'P' && b[2] == (byte)'N' && b[3] == (byte)'G')
        {
            return b.Length >= 24
                ? (Format.Png, BinaryPrimitives.ReadUInt32BigEndian(b[16..]), BinaryPrimitives.ReadUInt32BigEndian(b[20..]))
                : (Format.Png, 0, 0);
        }

        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        {
            return ReadJpeg(b);
        }

        if (b.Length >= 2 && b[0] == (byte)'B' && b[1] == (byte)'M')
        {
            return b.Length >= 26
                ? (Format.Bmp, Math.Abs(BinaryPrimitives.ReadInt32LittleEndian(b[18..])), Math.Abs(BinaryPrimitives.ReadInt32LittleEndian(b[22..])))
                : (Format.Bmp, 0, 0);
        }

        if (b.Length >= 8 && ((b[0] == 'I' && b[1] == 'I' && b[2] == 42) || (b[0] == 'M' && b[1] == 'M' && b[3] == 42)))
        {
            return ReadTiff(b);
        }

        if (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8))
        {
            // WebP is in the folder sources' default extensions and OpenCV decodes it, so it must pass this gate too.
            return ReadWebP(b);
        }

        return (Format.Unknown, 0, 0);
    }

    /// <summary>True when the file's end marker is missing (PNG IEND, JPEG EOI), the RIFF size of a WebP is not all
    /// there, or a TIFF points past its end: a half-written or truncated file that decoders would otherwise
    /// half-decode silently or refuse with a vague error.</summary>
    public static bool LooksTruncated(Format format, ReadOnlySpan<byte> b)
    {
        switch (format)
        {
            case Format.Png:
                // The last chunk is IEND: 4-byte length 0, "IEND", 4-byte CRC.
                return b.Length < 12 || !b[^8..^4].SequenceEqual("IEND"u8);
            case Format.Jpeg:
                // EOI (FF D9) ends the stream; some encoders add padding after it, so look near the end.
                var tail = b[Math.Max(0, b.Length - 4096)..];
                for (var i = tail.Length - 2; i >= 0; i--)
                {
                    if (tail[i] == 0xFF && tail[i + 1] == 0xD9)
                    {
                        return false;
                    }
                }

                return true;
            case Format.Tiff:
                return TiffTruncated(b);
            case Format.WebP:
                // The RIFF header states the payload size; a shorter file was cut off.
                return b.Length < 12 || b.Length < 8L + BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
            default:
                return false;
        }
    }

    /// <summary>The number of colour components a JPEG's frame header declares (1 = grayscale, 3 = colour); 0 when the
    /// data is not a JPEG or its frame header is not within <paramref name="b"/>.</summary>
    public static int JpegComponents(ReadOnlySpan<byte> b) =>
        b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF && FindJpegFrame(b) is var i and >= 0 ? b[i + 9] : 0;

    private static (Format, long, long) ReadJpeg(ReadOnlySpan<byte> b)
    {
        var i = FindJpegFrame(b);
        return i < 0
            ? (Format.Jpeg, 0, 0)
            : (Format.Jpeg, BinaryPrimitives.ReadUInt16BigEndian(b[(i + 7)..]), BinaryPrimitives.ReadUInt16BigEndian(b[(i + 5)..]));
    }

    /// <summary>The offset of the JPEG's frame header (SOFn marker: length, precision, height, width, components), or -1.</summary>
    private static int FindJpegFrame(ReadOnlySpan<byte> b)
    {
        var i = 2;
        while (i + 9 < b.Length)
        {
            if (b[i] != 0xFF)
            {
                i++;
                continue;
            }

            var marker = b[i + 1];
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7) or 0xFF)
            {
                i += marker == 0xFF ? 1 : 2;
                continue;
            }

            var len = BinaryPrimitives.ReadUInt16BigEndian(b[(i + 2)..]);
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                return i;
            }

            i += 2 + len;
        }

        return -1;
    }

    /// <summary>A TIFF whose directory, or any strip or tile it points at, lies past the end of the data: cut off. The
    /// decoder would otherwise fail with a vague error (or return a partly blank image).</summary>
    private static bool TiffTruncated(ReadOnlySpan<byte> b)
    {
        var le = b[0] == 'I';
        long ifd = U32(b, 4, le);
        if (ifd + 2 > b.Length)
        {
            return true;
        }

        int n = U16(b, (int)ifd, le);
        if (ifd + 2 + (12L * n) > b.Length)
        {
            return true;
        }

        long[]? offsets = null, counts = null;
        for (var k = 0; k < n; k++)
        {
            var e = (int)ifd + 2 + (k * 12);
            var tag = U16(b, e, le);
            if (tag is not (273 or 279 or 324 or 325))
            {
                continue; // StripOffsets, StripByteCounts, TileOffsets, TileByteCounts
            }

            var type = U16(b, e + 2, le);
            var count = U32(b, e + 4, le);
            var size = type == 3 ? 2 : 4;
            if (count > 1 << 20 || type is not (3 or 4))
            {
                return false; // implausible or unusual: leave the verdict to the decoder
            }

            long at = count * size <= 4 ? e + 8 : U32(b, e + 8, le);
            if (at + (count * size) > b.Length)
            {
                return true;
            }

            var values = new long[count];
            for (var i = 0; i < count; i++)
            {
                values[i] = size == 2 ? U16(b, (int)at + (i * 2), le) : U32(b, (int)at + (i * 4), le);
            }

            if (tag is 273 or 324)
            {
                offsets = values;
            }
            else
            {
                counts = values;
            }
        }

        if (offsets is null || counts is null || offsets.Length != counts.Length)
        {
            return false;
        }

        for (var i = 0; i < offsets.Length; i++)
        {
            if (offsets[i] + counts[i] > b.Length)
            {
                return true;
            }
        }

        return false;
    }

    private static (Format, long, long) ReadWebP(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 30 && b[12..16].SequenceEqual("VP8X"u8))
        {
            // Extended format: canvas width-1 and height-1 as 24-bit little-endian numbers.
            return (Format.WebP, 1 + (b[24] | (b[25] << 8) | (b[26] << 16)), 1 + (b[27] | (b[28] << 8) | (b[29] << 16)));
        }

        if (b.Length >= 25 && b[12..16].SequenceEqual("VP8L"u8) && b[20] == 0x2F)
        {
            // Lossless: 14 bits width-1, then 14 bits height-1.
            var bits = BinaryPrimitives.ReadUInt32LittleEndian(b[21..]);
            return (Format.WebP, 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF));
        }

        if (b.Length >= 30 && b[12..16].SequenceEqual("VP8 "u8))
        {
            // Lossy: after the 3-byte frame tag and the 9D 01 2A start code, 14-bit width and height.
            return (Format.WebP, BinaryPrimitives.ReadUInt16LittleEndian(b[26..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(b[28..]) & 0x3FFF);
        }

        return (Format.WebP, 0, 0);
    }

    private static (Format, long, long) ReadTiff(ReadOnlySpan<byte> b)
    {
        var le = b[0] == 'I';
        var ifd = U32(b, 4, le);
        if (ifd + 2 > b.Length)
        {
            return (Format.Tiff, 0, 0);
        }

        long w = 0, h = 0;
        int n = U16(b, (int)ifd, le);
        for (var k = 0; k < n; k++)
        {
            var e = (int)ifd + 2 + (k * 12);
            if (e + 12 > b.Length)
            {
                break;
            }

            var tag = U16(b, e, le);
            var type = U16(b, e + 2, le);
            long value = type == 3 ? U16(b, e + 8, le) : U32(b, e + 8, le);
            if (tag == 256)
            {
                w = value;
            }
            else if (tag == 257)
            {
                h = value;
            }
        }

        return (Format.Tiff, w, h);
    }

    private static uint U32(ReadOnlySpan<byte> b, int o, bool le) =>
        le ? BinaryPrimitives.ReadUInt32LittleEndian(b[o..]) : BinaryPrimitives.ReadUInt32BigEndian(b[o..]);

    private static ushort U16(ReadOnlySpan<byte> b, int o, bool le) =>
        le ? BinaryPrimitives.ReadUInt16LittleEndian(b[o..]) : BinaryPrimitives.ReadUInt16BigEndian(b[o..]);
}
