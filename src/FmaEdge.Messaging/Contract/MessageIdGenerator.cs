using System.Buffers.Binary;

namespace FmaEdge.Messaging.Contract;

/// <summary>Issues message ids: UUID v7 (RFC 9562; 48-bit Unix milliseconds, then random bits) written as 32 lower-case
/// hex digits without dashes, each one greater than the last (as strings and as numbers), so consumers can order and
/// de-duplicate by <c>message_id</c> alone. Several ids in one millisecond, or a clock that steps back, continue from
/// the last id by counting up in its random bits (RFC 9562 section 6.2, method 2). Thread-safe.</summary>
public sealed class MessageIdGenerator
{
    private static readonly UInt128 RandBMask = (UInt128.One << 62) - 1;
    private static readonly UInt128 RandAMask = (UInt128)0xFFF << 64;

    private readonly Lock _gate = new();
    private UInt128 _last;

    /// <summary>Starts after <paramref name="last"/> (the last id issued before a restart), or from nothing.</summary>
    public MessageIdGenerator(string? last = null)
    {
        if (last is { Length: 32 } && UInt128.TryParse(last, System.Globalization.NumberStyles.HexNumber, null, out var v))
        {
            _last = v;
        }
    }

    /// <summary>The last id issued (or the starting point), "" when none.</summary>
    public string Last
    {
        get
        {
            lock (_gate)
            {
                return _last == UInt128.Zero ? "" : Format(_last);
            }
        }
    }

    /// <summary>A UUID v7 for <paramref name="now"/> (the caller's <see cref="TimeProvider"/> time), greater than every id
    /// this generator issued before.</summary>
    public string Next(DateTimeOffset now)
    {
        var candidate = ToValue(Guid.CreateVersion7(now));
        lock (_gate)
        {
            _last = candidate > _last ? candidate : Increment(_last);
            return Format(_last);
        }
    }

    /// <summary>A single UUID v7 for <paramref name="now"/> in the same format (for session ids, drawn once per run).</summary>
    public static string NewId(DateTimeOffset now) => Format(ToValue(Guid.CreateVersion7(now)));

    private static UInt128 ToValue(Guid g)
    {
        Span<byte> b = stackalloc byte[16];
        g.TryWriteBytes(b, bigEndian: true, out _);
        return BinaryPrimitives.ReadUInt128BigEndian(b);
    }

    private static string Format(UInt128 v)
    {
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, v);
        return Convert.ToHexStringLower(b);
    }

    // Adds one to the 74 random bits (rand_a:12, rand_b:62), skipping the version and variant bits; on overflow the
    // timestamp moves one millisecond ahead, which keeps the order and the format.
    private static UInt128 Increment(UInt128 v)
    {
        if ((v & RandBMask) != RandBMask)
        {
            return v + 1;
        }

        var noRandB = v & ~RandBMask;
        return (v & RandAMask) != RandAMask ? noRandB + (UInt128.One << 64) : (noRandB & ~RandAMask) + (UInt128.One << 80);
    }
}
