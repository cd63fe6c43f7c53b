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
        var origin = new ResultOrigin("sess", "node-1", "cam A", 42, new DateTimeOffset(2026, 11, 26, 23, 0, 0, TimeSpan.FromHours(2)));
        var m = ResultMessage.From(p, origin, Samples.Image(3), Samples.Model, new StageLatency(1, 2, 3, 6));

        Assert.Equal(32, m.MessageId.Length);
        Assert.Equal(42, m.Seq);
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
        var m = ResultMessage.From(Samples.Prediction(1), new ResultOrigin("s", "n", "src", 1, DateTimeOffset.UnixEpoch.AddDays(20000)),
            Samples.Image(0), Samples.Model, new StageLatency(1, 2, 3, 6));
        var json = System.Text.Encoding.UTF8.GetString(MessageJson.Serialize(m));

        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        foreach (var name in new[] { "message_id", "session", "seq", "captured_at", "image", "model", "levels", "answer", "coarse", "latency_ms", "historical", "duplicate", "argmax_consistent" })
        {
            Assert.True(root.TryGetProperty(name, out _), $"missing {name} in {json}");
        }

        Assert.EndsWith("Z", root.GetProperty("captured_at").GetString());
        Assert.True(root.GetProperty("levels")[0].TryGetProperty("top_k", out _));
        Assert.True(root.GetProperty("image").TryGetProperty("sha256", out _));
        Assert.False(root.TryGetProperty("duplicate_of", out _));

        var back = MessageJson.Deserialize<ResultMessage>(System.Text.Encoding.UTF8.GetBytes(json));
        Assert.Equal(m.MessageId, back.MessageId);
        Assert.Equal(m.CapturedAt, back.CapturedAt);
        Assert.Equal(m.Answer.Label, back.Answer.Label);
        Assert.Equal(m.Levels[2].TopK[1].Confidence, back.Levels[2].TopK[1].Confidence);
    }

    [Fact]
    public void NewMessageId_ManyCalls_AreUniqueAndTimeOrdered()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => ResultMessage.NewMessageId()).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        // UUID v7 starts with a 48-bit millisecond timestamp: lexical order follows creation order across milliseconds.
        Assert.True(string.CompareOrdinal(ids[0][..12], ids[^1][..12]) <= 0);
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
