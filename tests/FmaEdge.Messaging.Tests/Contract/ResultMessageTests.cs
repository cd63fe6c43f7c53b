using System.Text.Json;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Tests.Support;

namespace FmaEdge.Messaging.Tests.Contract;

public sealed class ResultMessageTests
{
    [Fact]
    public void From_RealPrediction_CarriesEveryLevelPathAndCoarseAnswer()
    {
        var p = Samples.Prediction(7);
        var m = ResultMessage.From(p, "cam A", new DateTimeOffset(2026, 11, 26, 23, 0, 0, TimeSpan.FromHours(2)), Samples.Image(3), Samples.Model,
            new StageLatency(1, 2, 3, 6));

        // Identity is assigned when the outbox stores it, never by the builder.
        Assert.Equal(("", "", 0L), (m.MessageId, m.Session, m.Seq));
        Assert.Equal("cam A", m.Source);
        Assert.Equal(TimeSpan.Zero, m.CapturedAt.Offset);
        Assert.Equal(21, m.CapturedAt.Hour);
        Assert.Equal(Samples.Tree.Depth, m.Levels.Count);
        for (var l = 0; l < p.Levels.Count; l++)
        {
            Assert.Equal(p.Levels[l].Label, m.Levels[l].Label);
            Assert.Equal(p.Levels[l].LevelName, m.Levels[l].Name);
            Assert.Equal(p.Levels[l].TopK.Count, m.Levels[l].TopK.Count);
            Assert.Equal(p.Levels[l].TopK[0].Label, m.Levels[l].TopK[0].Label);
        }

        Assert.Equal(p.Path[^1].Path, m.Answer.Path);
        Assert.Equal(p.Path.Count, m.Answer.Nodes.Count);
        Assert.Equal(p.Coarse.Depth, m.Coarse.Depth);
        Assert.Equal(p.Coarse.Depth == Samples.Tree.Depth, m.Coarse.Complete);
        Assert.Equal(p.Coarse.Deepest?.Path, m.Coarse.Path);
        Assert.False(m.Historical);
        Assert.False(m.Duplicate);
    }

    [Fact]
    public void Serialize_Result_IsSnakeCaseWithUtcTimestampsAndRoundTrips()
    {
        var built = ResultMessage.From(Samples.Prediction(1), "src", DateTimeOffset.UnixEpoch.AddDays(20000), Samples.Image(0), Samples.Model,
            new StageLatency(1, 2, 3, 6));
        var m = built with { MessageId = MessageIdGenerator.NewId(DateTimeOffset.UtcNow), Session = "s", Seq = 1 };
        var json = System.Text.Encoding.UTF8.GetString(MessageJson.Serialize(m));

        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        foreach (var name in new[] { "message_id", "session", "seq", "node", "source", "captured_at", "image", "model", "levels", "answer", "coarse", "latency_ms", "historical", "duplicate", "argmax_consistent" })
        {
            Assert.True(root.TryGetProperty(name, out _), $"missing {name} in {json}");
        }

        Assert.EndsWith("Z", root.GetProperty("captured_at").GetString());
        Assert.True(root.GetProperty("levels")[0].TryGetProperty("top_k", out _));
        Assert.True(root.GetProperty("image").TryGetProperty("sha256", out _));
        Assert.Equal(new FileInfo(Samples.Images[0]).Length, root.GetProperty("image").GetProperty("bytes").GetInt64());
        Assert.Equal("1", root.GetProperty("model").GetProperty("version").GetString());
        Assert.False(root.TryGetProperty("duplicate_of", out _));

        var back = MessageJson.Deserialize<ResultMessage>(System.Text.Encoding.UTF8.GetBytes(json));
        Assert.Equal(m.MessageId, back.MessageId);
        Assert.Equal(m.CapturedAt, back.CapturedAt);
        Assert.Equal(m.Answer.Label, back.Answer.Label);
        Assert.Equal(m.Levels[2].TopK[1].Confidence, back.Levels[2].TopK[1].Confidence);
    }

    /// <summary>What docs/mqtt.md promises of an id: 32 lower-case hex digits, UUID version 7, RFC 9562 variant.</summary>
    internal static void AssertUuidV7(string? id)
    {
        Assert.NotNull(id);
        Assert.Matches("^[0-9a-f]{32}$", id);
        var g = Guid.ParseExact(id, "N");
        Assert.Equal(7, g.Version);
        Assert.Contains(id[16], "89ab"); // variant 10xx
    }

    [Fact]
    public void Next_TenThousandIdsInOneMillisecond_Version7StrictlyIncreasingWithThatTimestamp()
    {
        var at = new DateTimeOffset(2026, 12, 2, 15, 0, 0, 123, TimeSpan.Zero);
        var gen = new MessageIdGenerator();
        var ids = Enumerable.Range(0, 10_000).Select(_ => gen.Next(at)).ToList();

        Assert.All(ids, AssertUuidV7);
        for (var i = 1; i < ids.Count; i++)
        {
            Assert.True(string.CompareOrdinal(ids[i - 1], ids[i]) < 0, $"id {i} does not follow id {i - 1}: {ids[i - 1]} {ids[i]}");
        }

        // The first 48 bits are the Unix milliseconds of the time given (the TimeProvider's, not the machine clock's).
        Assert.Equal(at.ToUnixTimeMilliseconds(), Convert.ToInt64(ids[0][..12], 16));
    }

    [Fact]
    public void Next_ClockStepsBack_ContinuesAfterTheLastId()
    {
        var gen = new MessageIdGenerator();
        var late = gen.Next(new DateTimeOffset(2026, 12, 2, 16, 0, 0, TimeSpan.Zero));
        var early = gen.Next(new DateTimeOffset(2026, 12, 2, 15, 0, 0, TimeSpan.Zero));
        AssertUuidV7(early);
        Assert.True(string.CompareOrdinal(late, early) < 0);

        var resumed = new MessageIdGenerator(early); // a restart that starts from the stored last id
        Assert.True(string.CompareOrdinal(early, resumed.Next(DateTimeOffset.UnixEpoch)) < 0);
    }

    [Fact]
    public void Serialize_CameraFrame_CarriesFrameIdAndTimestampOnlyWhenKnown()
    {
        var m = ResultMessage.From(Samples.Prediction(1), "cam1", DateTimeOffset.UnixEpoch.AddDays(20000), Samples.Image(0), Samples.Model,
            new StageLatency(1, 2, 3, 6));
        Assert.False(JsonDocument.Parse(MessageJson.Serialize(m)).RootElement.TryGetProperty("camera", out _));

        var json = JsonDocument.Parse(MessageJson.Serialize(m with { Camera = new CameraRef(4711, 123_456_789_000) })).RootElement;
        Assert.Equal(4711, json.GetProperty("camera").GetProperty("frame_id").GetInt64());
        Assert.Equal(123_456_789_000, json.GetProperty("camera").GetProperty("timestamp_ns").GetInt64());
    }

    [Fact]
    public void Next_RandomBitsExhausted_CarriesIntoTheTimestampKeepingVersionAndVariant()
    {
        var gen = new MessageIdGenerator("0190000000007fffbfffffffffffffff");
        Assert.Equal("019000000001" + "7000" + "8000000000000000", gen.Next(DateTimeOffset.UnixEpoch));
        Assert.Equal("019000000001" + "7000" + "8000000000000001", gen.Next(DateTimeOffset.UnixEpoch));
    }
}

public sealed class TopicsAndOptionsTests
{
    [Theory]
    [InlineData("cam/1", "cam_1")]
    [InlineData("a+b#c", "a_b_c")]
    [InlineData("$SYS", "_SYS")]
    [InlineData("line 3", "line_3")]
    [InlineData("", "_")]
    [InlineData("kamera-Ä.1", "kamera-Ä.1")]
    public void SanitizeSegment_Input_IsSafeTopicLevel(string input, string expected) =>
        Assert.Equal(expected, Topics.SanitizeSegment(input));

    [Fact]
    public void Topics_DefaultPrefix_IsFmaNode()
    {
        var t = new Topics(null, "orin 01");
        Assert.Equal("fma/orin_01/status", t.Status);
        Assert.Equal("fma/orin_01/model", t.Model);
        Assert.Equal("fma/orin_01/events", t.Events);
        Assert.Equal("fma/orin_01/stats", t.Stats);
        Assert.Equal("fma/orin_01/folder_a_b/result", t.Result("folder/a+b"));
        Assert.Equal("plant/line1/result_x/result", new Topics("/plant/line1/", "n").Result("result x"));
    }

    [Fact]
    public void Validate_Defaults_AreValid() => Assert.Empty(new MqttOptions().Validate());

    [Fact]
    public void Validate_ManyBadFields_ListsEveryProblem()
    {
        var o = new MqttOptions
        {
            Host = "",
            Port = 70000,
            ReconnectMinSeconds = 10,
            ReconnectMaxSeconds = 1,
            Password = "x",
            TopicPrefix = "fma/#",
            OutboxMaxMessages = 1,
            Tls = new MqttTlsOptions { Enabled = true, CaFile = "/nonexistent/ca.pem", ClientCertificateFile = "/nonexistent/c.pem" },
            Embedded = new EmbeddedBrokerOptions { Enabled = true, BindAddress = "localhost", Port = 1883 },
        };
        var errors = o.Validate();
        foreach (var key in new[] { "Mqtt.Host", "Mqtt.Port", "ReconnectMaxSeconds", "Mqtt.Password", "TopicPrefix", "OutboxMaxMessages",
                     "Tls.CaFile", "Tls.ClientCertificateFile", "Tls.ClientKeyFile", "Embedded.BindAddress", "publisher connects to port" })
        {
            Assert.Contains(errors, e => e.Contains(key, StringComparison.Ordinal));
        }

        Assert.Throws<ArgumentException>(o.ThrowIfInvalid);
    }
}
