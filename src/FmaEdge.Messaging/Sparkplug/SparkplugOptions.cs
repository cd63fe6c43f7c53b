namespace FmaEdge.Messaging.Sparkplug;

/// <summary>Sparkplug B output beside the JSON contract (docs/mqtt.md, "Sparkplug B"): the node is a Sparkplug edge
/// node, each source a device. It uses the broker, login and TLS of <see cref="MqttOptions"/> on a second connection.
/// Bound from "Mqtt:Sparkplug".</summary>
public sealed class SparkplugOptions
{
    /// <summary>Publish Sparkplug B (off by default).</summary>
    public bool Enabled { get; set; }

    /// <summary>Sparkplug group id (the second topic level), e.g. the plant or line.</summary>
    public string GroupId { get; set; } = "fma";

    /// <summary>Sparkplug edge node id; empty means the node name.</summary>
    public string? EdgeNodeId { get; set; }

    /// <summary>MQTT client id of the Sparkplug connection; empty means "&lt;Mqtt.ClientId&gt;-spb".</summary>
    public string? ClientId { get; set; }

    /// <summary>When set, births wait until this Sparkplug host application says it is online on
    /// spBv1.0/STATE/&lt;id&gt;, and the node dies and reconnects when it goes offline (store and forward meanwhile).</summary>
    public string? PrimaryHostId { get; set; }

    /// <summary>Every problem with the settings (names as in configuration).</summary>
    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        if (!Enabled)
        {
            return e;
        }

        CheckId(e, "Mqtt.Sparkplug.GroupId", GroupId, required: true);
        CheckId(e, "Mqtt.Sparkplug.EdgeNodeId", EdgeNodeId, required: false);
        CheckId(e, "Mqtt.Sparkplug.PrimaryHostId", PrimaryHostId, required: false);
        if (ClientId is { Length: > 0 } id && (id.Length > 128 || id.Any(char.IsControl)))
        {
            e.Add("Mqtt.Sparkplug.ClientId must be at most 128 printable characters");
        }

        return e;
    }

    /// <summary>A Sparkplug id (group, edge node, device) made from any name: '/', '+' and '#' are not allowed in
    /// them (Sparkplug 3.0 section 4.1.1), so they become '_', as do other characters MQTT topics dislike.</summary>
    public static string ToSparkplugId(string name) =>
        new(name.Trim().Select(c => c is '/' or '+' or '#' || char.IsControl(c) ? '_' : c).ToArray());

    internal SparkplugOptions CloneShallow() => (SparkplugOptions)MemberwiseClone();

    private static void CheckId(List<string> e, string key, string? value, bool required)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            if (required)
            {
                e.Add($"{key} is empty");
            }

            return;
        }

        if (value.IndexOfAny(['/', '+', '#']) >= 0 || value.Any(char.IsControl))
        {
            e.Add($"{key} '{value}' must not contain '/', '+', '#' or control characters (Sparkplug ids are single topic levels)");
        }
    }
}
