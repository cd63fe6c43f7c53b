using System.Text.Json;
using System.Text.Json.Serialization;

namespace FmaEdge.Messaging.Contract;

/// <summary>The one JSON shape of every FmaEdge MQTT payload: snake_case names, UTC ISO-8601 timestamps,
/// nulls omitted, compact. Immutable and thread-safe.</summary>
public static class MessageJson
{
    /// <summary>Serializer options shared by publisher, tests and consumers written in .NET.</summary>
    public static readonly JsonSerializerOptions Options = Create();

    /// <summary>UTF-8 JSON of a message.</summary>
    public static byte[] Serialize<T>(T message) => JsonSerializer.SerializeToUtf8Bytes(message, Options);

    /// <summary>Parses a payload back into a message (throws <see cref="JsonException"/> when malformed).</summary>
    public static T Deserialize<T>(ReadOnlySpan<byte> utf8) =>
        JsonSerializer.Deserialize<T>(utf8, Options) ?? throw new JsonException($"payload is null, expected {typeof(T).Name}");

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = null,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            PropertyNameCaseInsensitive = true,
            WriteIndented = false,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
        o.Converters.Add(new UtcTimestampConverter());
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    /// <summary>Writes every timestamp as UTC with a 'Z' and millisecond precision, whatever offset it carries,
    /// so consumers never have to guess the zone.</summary>
    private sealed class UtcTimestampConverter : JsonConverter<DateTimeOffset>
    {
        public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            DateTimeOffset.Parse(reader.GetString()!, System.Globalization.CultureInfo.InvariantCulture).ToUniversalTime();

        public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
            writer.WriteStringValue(FormatUtc(value));
    }

    /// <summary>ISO-8601 UTC with milliseconds, e.g. 2026-11-26T23:41:07.123Z.</summary>
    public static string FormatUtc(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
