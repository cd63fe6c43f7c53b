using System.Text.Json;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>What the floor and the operator see of a daemon under test: MQTT events and results from a real subscriber,
/// and the daemon's own JSON log file. Shared by the reliability suites. Thread-safe for reading.</summary>
public static class FloorObserver
{
    /// <summary>Settings for a daemon that publishes to <paramref name="broker"/> (no embedded broker) and writes its log
    /// as compact JSON into <paramref name="logDir"/>.</summary>
    public static Action<Dictionary<string, string?>> ViaBroker(MosquittoBroker broker, string logDir) => s =>
    {
        s["FmaEdge:Output:Type"] = "mqtt";
        s.Remove("FmaEdge:Output:Path");
        s["FmaEdge:Mqtt:Host"] = broker.Host;
        s["FmaEdge:Mqtt:Port"] = broker.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["FmaEdge:Mqtt:Embedded:Enabled"] = "false";
        s["FmaEdge:Logging:Level"] = "Information";
        s["FmaEdge:Logging:File"] = Path.Combine(logDir, "fma-edge.log");
    };

    /// <summary>Every event the subscriber received on <c>fma/test-node/events</c>.</summary>
    public static IReadOnlyList<JsonElement> Events(Subscriber sub) =>
        sub.Retained.Where(m => m.Topic == "fma/test-node/events")
            .Select(m => JsonDocument.Parse(m.Payload).RootElement.Clone()).ToList();

    /// <summary>Events of <paramref name="kind"/> (snake_case, as on the wire) whose subject is the file <paramref name="name"/>.</summary>
    public static IReadOnlyList<JsonElement> EventsFor(Subscriber sub, string kind, string name) =>
        Events(sub).Where(e => e.GetProperty("kind").GetString() == kind
            && e.TryGetProperty("details", out var d) && d.ValueKind == JsonValueKind.Object
            && d.TryGetProperty("subject", out var subject) && Path.GetFileName(subject.GetString()) == name).ToList();

    /// <summary>Every line of the daemon's JSON log files in <paramref name="logDir"/> (read while the daemon writes).</summary>
    public static IReadOnlyList<JsonElement> LogLines(string logDir)
    {
        var lines = new List<JsonElement>();
        if (!Directory.Exists(logDir))
        {
            return lines;
        }

        foreach (var file in Directory.GetFiles(logDir, "*.log"))
        {
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(fs);
            while (reader.ReadLine() is { } line)
            {
                if (line.StartsWith('{'))
                {
                    try
                    {
                        lines.Add(JsonDocument.Parse(line).RootElement.Clone());
                    }
                    catch (JsonException)
                    {
                        // A line still being written.
                    }
                }
            }
        }

        return lines;
    }

    /// <summary>Log lines with event id <paramref name="eventId"/> whose property <paramref name="property"/> is <paramref name="value"/>.</summary>
    public static IReadOnlyList<JsonElement> LogLinesFor(string logDir, int eventId, string property, string value) =>
        LogLines(logDir).Where(l => l.TryGetProperty("EventId", out var id) && id.ValueKind == JsonValueKind.Object
            && id.TryGetProperty("Id", out var n) && n.GetInt32() == eventId
            && l.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String
            && (p.GetString() == value || Path.GetFileName(p.GetString()) == value)).ToList();
}
