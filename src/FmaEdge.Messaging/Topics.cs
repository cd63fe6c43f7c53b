using System.Text;

namespace FmaEdge.Messaging;

/// <summary>The topic tree under one prefix (default "fma/&lt;node&gt;"): status, model, events, stats and
/// per-source results. Immutable and thread-safe.</summary>
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
