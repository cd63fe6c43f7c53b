using System.Text;

namespace FmaEdge.Messaging;

/// <summary>The topic tree under one prefix (default "fma/&lt;node&gt;"): status, model, events, stats,
/// per-source results and per-source trigger commands. Immutable and thread-safe.</summary>
public sealed class Topics
{
    /// <summary>Builds the tree for a prefix (sanitised segment by segment) or, when empty, "fma/&lt;node&gt;".</summary>
    public Topics(string? prefix, string node)
    {
        var raw = string.IsNullOrWhiteSpace(prefix) ? "fma/" + node : prefix.Trim().Trim('/');
        Prefix = string.Join('/', raw.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(SanitizeSegment));
        Status = Prefix + "/status";
        Model = Prefix + "/model";
        Events = Prefix + "/events";
        Stats = Prefix + "/stats";
    }

    /// <summary>The sanitised prefix.</summary>
    public string Prefix { get; }

    /// <summary>Retained online/offline (QoS 1) and the last will.</summary>
    public string Status { get; }

    /// <summary>Retained serving model (QoS 1).</summary>
    public string Model { get; }

    /// <summary>Errors and notices (QoS 1).</summary>
    public string Events { get; }

    /// <summary>Periodic counters (QoS 0).</summary>
    public string Stats { get; }

    /// <summary>Results of one source (QoS 1, one message per image).</summary>
    public string Result(string source) => $"{Prefix}/{SanitizeSegment(source)}/result";

    /// <summary>Software trigger command for one source: a message here makes the source's camera take one frame.</summary>
    public string Trigger(string source) => $"{Prefix}/{SanitizeSegment(source)}/trigger";

    /// <summary>The filter the daemon subscribes to for every source's trigger.</summary>
    public string Triggers => Prefix + "/+/trigger";

    /// <summary>The source (topic level) of a trigger topic under this prefix; null for any other topic.</summary>
    public string? TriggerSource(string topic)
    {
        var head = Prefix + "/";
        const string tail = "/trigger";
        if (!topic.StartsWith(head, StringComparison.Ordinal) || !topic.EndsWith(tail, StringComparison.Ordinal)
            || topic.Length <= head.Length + tail.Length)
        {
            return null;
        }

        var source = topic[head.Length..^tail.Length];
        return source.Contains('/', StringComparison.Ordinal) ? null : source;
    }

    /// <summary>Makes a string safe as one topic level: wildcards '+' '#', '/', '$', control characters and
    /// spaces become '_'; an empty result becomes "_". Letters, digits, '-', '.', '_' and other printable
    /// characters are kept.</summary>
    public static string SanitizeSegment(string segment)
    {
        if (string.IsNullOrEmpty(segment))
        {
            return "_";
        }

        var sb = new StringBuilder(segment.Length);
        foreach (var c in segment.Trim())
        {
            sb.Append(c is '+' or '#' or '/' or '$' or ' ' || char.IsControl(c) ? '_' : c);
        }

        return sb.Length == 0 ? "_" : sb.ToString();
    }
}
