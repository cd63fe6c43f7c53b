using System.Text.Json;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Support;

/// <summary>Writes payloads seen by a real subscriber to artifacts/mqtt-examples, so docs/mqtt.md quotes real
/// output rather than invented JSON.</summary>
public static class ExamplePayloads
{
    public static void Save(string name, string payload)
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "artifacts", "mqtt-examples");
        Directory.CreateDirectory(dir);
        using var doc = JsonDocument.Parse(payload);
        File.WriteAllText(Path.Combine(dir, name), JsonSerializer.Serialize(doc.RootElement, new JsonSerializerOptions { WriteIndented = true }));
    }
}
