using System.Buffers.Binary;

namespace FmaEdge.Vision;

/// <summary>Reads format and declared size from an image header without decoding pixels, so a
/// decompression bomb is refused before any memory is spent on it. Stateless and thread-safe.</summary>
public static class ImageHeader
{
    /// <summary>Known container formats.</summary>
    public enum Format { Unknown, Png, Jpeg, Bmp, Tiff }

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

        return (Format.Unknown, 0, 0);
    }

    /// <summary>True when the file's end marker is missing (PNG IEND, JPEG EOI): a half-written or
    /// truncated file that decoders would otherwise half-decode silently.</summary>
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
            default:
                return false;
        }
    }

    private static (Format, long, long) ReadJpeg(ReadOnlySpan<byte> b)
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
                return (Format.Jpeg, BinaryPrimitives.ReadUInt16BigEndian(b[(i + 7)..]), BinaryPrimitives.ReadUInt16BigEndian(b[(i + 5)..]));
            }

            i += 2 + len;
        }

        return (Format.Jpeg, 0, 0);
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
