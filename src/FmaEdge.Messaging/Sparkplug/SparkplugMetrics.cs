using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Sparkplug.Protobuf;
using Google.Protobuf;
using static FmaEdge.Messaging.Sparkplug.Protobuf.Payload.Types;

namespace FmaEdge.Messaging.Sparkplug;

/// <summary>One metric fma-edge declares in a birth: its name, Sparkplug data type and alias (unique across the edge
/// node: node metrics 1..99, device d's metrics 1000*d + i).</summary>
public sealed record MetricDefinition(string Name, DataType Type, ulong Alias);

/// <summary>What fma-edge publishes in Sparkplug B (docs/mqtt.md, "Sparkplug B"): the edge node's metrics and each
/// device's (source's) result metrics, and how a value of ours becomes a Sparkplug metric. Pure functions.</summary>
public static class SparkplugMetrics
{
    public const string BdSeq = "bdSeq";
    public const string Rebirth = "Node Control/Rebirth";
    public const string Version = "Node Info/Version";
    public const string Session = "Node Info/Session";
    public const string ModelId = "Model/Id";
    public const string ModelVersion = "Model/Version";
    public const string ModelSha256 = "Model/Sha256";
    public const string ModelProvider = "Model/Execution Provider";
    public const string ModelLevels = "Model/Levels";
    public const string Health = "Status/Health";
    public const string ImagesProcessed = "Status/Images Processed";
    public const string ImagesFailed = "Status/Images Failed";
    public const string FramesDropped = "Status/Frames Dropped";
    public const string OutboxDepth = "Status/Outbox Depth";

    /// <summary>The edge node's metrics, in birth order.</summary>
    public static readonly IReadOnlyList<MetricDefinition> Node =
    [
        new(BdSeq, DataType.Int64, 1),
        new(Rebirth, DataType.Boolean, 2),
        new(Version, DataType.String, 3),
        new(Session, DataType.String, 4),
        new(ModelId, DataType.String, 5),
        new(ModelVersion, DataType.String, 6),
        new(ModelSha256, DataType.String, 7),
        new(ModelProvider, DataType.String, 8),
        new(ModelLevels, DataType.String, 9),
        new(Health, DataType.String, 10),
        new(ImagesProcessed, DataType.Uint64, 11),
        new(ImagesFailed, DataType.Uint64, 12),
        new(FramesDropped, DataType.Uint64, 13),
        new(OutboxDepth, DataType.Uint64, 14),
    ];

    /// <summary>A device's (source's) metrics for a model with these level names, in birth order; aliases from
    /// <paramref name="deviceNumber"/> (1, 2, ...).</summary>
    public static IReadOnlyList<MetricDefinition> Device(int deviceNumber, IReadOnlyList<string> levels)
    {
        var names = new List<(string, DataType)>
        {
            ("Result/Message Id", DataType.String),
            ("Result/Seq", DataType.Uint64),
            ("Result/Image Id", DataType.String),
            ("Result/Captured At", DataType.DateTime),
            ("Result/Camera Frame Id", DataType.Uint64),
            ("Result/Duplicate", DataType.Boolean),
            ("Answer/Label", DataType.String),
            ("Answer/Path", DataType.String),
            ("Answer/Confidence", DataType.Double),
            ("Coarse/Depth", DataType.Int32),
            ("Coarse/Complete", DataType.Boolean),
            ("Coarse/Label", DataType.String),
            ("Coarse/Path", DataType.String),
            ("Coarse/Confidence", DataType.Double),
            ("Latency/Total ms", DataType.Double),
            ("Latency/Inference ms", DataType.Double),
        };
        foreach (var level in levels)
        {
            names.Add(($"Levels/{level}/Label", DataType.String));
            names.Add(($"Levels/{level}/Confidence", DataType.Double));
        }

        return names.Select((n, i) => new MetricDefinition(n.Item1, n.Item2, (ulong)((deviceNumber * 1000) + i + 1))).ToList();
    }

    /// <summary>The values of one result, by device metric name (null = no value, sent as is_null).</summary>
    public static Dictionary<string, object?> Values(ResultMessage r)
    {
        var v = new Dictionary<string, object?>
        {
            ["Result/Message Id"] = r.MessageId,
            ["Result/Seq"] = (ulong)r.Seq,
            ["Result/Image Id"] = r.Image.Id,
            ["Result/Captured At"] = r.CapturedAt,
            ["Result/Camera Frame Id"] = r.Camera is { } c ? (ulong)c.FrameId : null,
            ["Result/Duplicate"] = r.Duplicate,
            ["Answer/Label"] = r.Answer.Label,
            ["Answer/Path"] = r.Answer.Path,
            ["Answer/Confidence"] = r.Answer.Confidence,
            ["Coarse/Depth"] = r.Coarse.Depth,
            ["Coarse/Complete"] = r.Coarse.Complete,
            ["Coarse/Label"] = r.Coarse.Label,
            ["Coarse/Path"] = r.Coarse.Path,
            ["Coarse/Confidence"] = r.Coarse.Confidence,
            ["Latency/Total ms"] = r.LatencyMs.Total,
            ["Latency/Inference ms"] = r.LatencyMs.Infer,
        };
        foreach (var level in r.Levels)
        {
            v[$"Levels/{level.Name}/Label"] = level.Label;
            v[$"Levels/{level.Name}/Confidence"] = level.Confidence;
        }

        return v;
    }

    /// <summary>A metric with its value (or is_null); <paramref name="withName"/> for births and the death
    /// certificate, alias only in data messages.</summary>
    public static Metric Make(MetricDefinition d, object? value, DateTimeOffset timestamp, bool withName, bool historical = false)
    {
        var m = new Metric { Alias = d.Alias, Timestamp = (ulong)timestamp.ToUnixTimeMilliseconds(), Datatype = (uint)d.Type };
        if (withName)
        {
            m.Name = d.Name;
        }

        if (historical)
        {
            m.IsHistorical = true;
        }

        if (value is null)
        {
            m.IsNull = true;
            return m;
        }

        switch (d.Type)
        {
            case DataType.Boolean:
                m.BooleanValue = (bool)value;
                break;
            case DataType.String:
                m.StringValue = (string)value;
                break;
            case DataType.Double:
                m.DoubleValue = Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture);
                break;
            case DataType.Int32:
                m.IntValue = unchecked((uint)Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
            case DataType.Int64:
                m.LongValue = unchecked((ulong)Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
            case DataType.Uint64:
                m.LongValue = Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture);
                break;
            case DataType.DateTime:
                m.LongValue = (ulong)((DateTimeOffset)value).ToUnixTimeMilliseconds();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(d), d.Type, "data type not used by fma-edge");
        }

        return m;
    }

    /// <summary>The death certificate: bdSeq only, no seq (Sparkplug 3.0 section 6.4.2, payloads-ndeath-seq).</summary>
    public static byte[] Death(long bdSeq, DateTimeOffset now)
    {
        var p = new Payload { Timestamp = (ulong)now.ToUnixTimeMilliseconds() };
        p.Metrics.Add(Make(Node[0], bdSeq, now, withName: true));
        return p.ToByteArray();
    }

    /// <summary>True when an NCMD asks for a rebirth: the metric "Node Control/Rebirth" (by name or alias) set true.</summary>
    public static bool IsRebirthRequest(Payload command) =>
        command.Metrics.Any(m => (m.Name == Rebirth || (!m.HasName && m.Alias == Node[1].Alias)) && m.HasBooleanValue && m.BooleanValue);
}
