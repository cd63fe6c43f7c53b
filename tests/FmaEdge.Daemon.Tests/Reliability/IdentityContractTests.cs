using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using FmaEdge.Core.Contract;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>The published identity and payloads against docs/mqtt.md, end to end: the real <c>fma-edge run</c> process,
/// a real mosquitto, the trained model, real images with bad files and a duplicate mixed in, a broker bounce, a
/// <c>kill -9</c> of the daemon and a restart. A consumer must be able to find a lost message from <c>seq</c> alone and
/// order and de-duplicate by <c>message_id</c>.</summary>
public sealed partial class IdentityContractTests : IDisposable
{
    private readonly TempFolder _tmp = new("identity");

    public void Dispose() => _tmp.Dispose();

    private string Socket => Path.Combine(_tmp.Path, "run", "status.sock");

    [Fact]
    public async Task Run_GoodAndBadImagesBrokerBounceAndKill9_SeqWithoutGapsV7IdsRepeatedOnlyAsReplaysAndEveryDocumentedField()
    {
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var floor = await FloorSubscriber.ConnectAsync(broker);
        var good = TestPaths.SampleImages("train", perLeaf: 5).ToList(); // 105 real images
        var (batch1, batch2, batch3) = (good[..30], good[30..60], good[60..]);
        var (config, inbox) = await ProcessTests.PrepareAsync(_tmp.Path, DaemonHarness.Settings(_tmp.Path, FaultRig.ViaBroker(broker.Host, broker.Port)), []);
        var staging = Directory.CreateDirectory(Path.Combine(_tmp.Path, "staging")).FullName;
        var bad = new Dictionary<string, string>(); // name -> expected reason
        var goodNames = good.Select(Path.GetFileName).ToList();

        Drop(inbox, staging, batch1);
        DropBad(inbox, staging, bad, "truncated.png", File.ReadAllBytes(good[0])[..2000], "truncated");
        DropBad(inbox, staging, bad, "noise.png", RandomNumberGenerator.GetBytes(5000), "not-an-image");
        DropBad(inbox, staging, bad, "empty.png", [], "empty");
        string sessionA;
        using (var first = ProcessTests.Start(config))
        {
            // The first image's result is out: its copy under another name (below) must be a duplicate, not a second result.
            await DaemonHarness.WaitUntilAsync(() => HasResult(floor, goodNames[0]) && floor.DistinctImages >= 10, "first results", 60_000);
            sessionA = floor.Results[0].Json.GetProperty("session").GetString()!;

            // Broker bounce mid-stream: what is committed meanwhile waits in the outbox and arrives historical.
            await broker.StopAsync();
            Drop(inbox, staging, batch2);
            File.Copy(good[0], Path.Combine(staging, "copy-of-first.png"));
            File.Move(Path.Combine(staging, "copy-of-first.png"), Path.Combine(inbox, "copy-of-first.png"));
            DropBad(inbox, staging, bad, "text.png", "not an image at all\n"u8.ToArray(), "not-an-image");
            // Back only once a result of the second batch is stored (its file is in done/) while the daemon knows it is cut
            // off: that result waits in the outbox and must arrive historical.
            await FaultRig.WaitForStatusAsync(Socket, (_, s) => !s.GetProperty("output").GetProperty("connected").GetBoolean()
                && batch2.Any(p => File.Exists(Path.Combine(inbox, "done", Path.GetFileName(p)))),
                "a result stored while the daemon is disconnected", 60_000);
            await broker.StartAsync();
            await DaemonHarness.WaitUntilAsync(() => floor.DistinctImages >= 45, "results after the bounce", 60_000);

            // kill -9 while the third batch streams: once part of it is out (the daemon may be anywhere in the rest).
            Drop(inbox, staging, batch3[..20]);
            DropBad(inbox, staging, bad, "half.png", File.ReadAllBytes(good[1])[..3000], "truncated");
            await DaemonHarness.WaitUntilAsync(() => batch3[..3].Any(p => HasResult(floor, Path.GetFileName(p))), "the third batch streaming", 60_000);
            first.Kill();
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        // The rest arrives while the daemon is down, so the restarted one has work of its own whatever the machine's speed.
        Drop(inbox, staging, batch3[20..]);

        string sessionB;
        using (var second = ProcessTests.Start(config))
        {
            await DaemonHarness.WaitUntilAsync(() => goodNames.All(n => HasResult(floor, n)), "every good image's result after the restart", 60_000);
            await DaemonHarness.WaitUntilAsync(() => Directory.GetFiles(inbox).Length == 0, "the inbox emptied", 30_000);
            await FaultRig.WaitForStatusAsync(Socket, (c, s) => c == 0 && s.GetProperty("output").GetProperty("outboxDepth").GetInt64() == 0,
                "healthy with an empty outbox");
            sessionB = floor.Statuses.Last(s => s.State == "online").Json.GetProperty("session").GetString()!;
            // Stats are periodic (QoS 0, never stored): wait for one from this run before stopping it.
            var statsBefore = floor.Messages.Count(m => m.Topic.EndsWith("/stats", StringComparison.Ordinal));
            await DaemonHarness.WaitUntilAsync(() => floor.Messages.Count(m => m.Topic.EndsWith("/stats", StringComparison.Ordinal)) > statsBefore,
                "a stats message from the running daemon", 30_000);
            await second.SignalAsync("TERM");
            await second.WaitForExitAsync(TimeSpan.FromSeconds(45));
            Assert.Equal(0, second.ExitCode);
        }

        await DaemonHarness.WaitUntilAsync(() => floor.Statuses.LastOrDefault()?.State == "offline", "the retained offline status", 10_000);
        Assert.NotEqual(sessionA, sessionB);
        AssertUuidV7(sessionA);
        AssertUuidV7(sessionB);

        // Every good image exactly once; the bad ones and the copy took no result.
        FaultRig.AssertEachImageOnce(floor.Results, goodNames!);

        // Identity: every copy of a message id is the same message; a second copy is a replay marked historical (or a
        // broker re-delivery with DUP). message_id and session are UUID v7.
        var all = floor.Results.Concat(floor.Events()).ToList();
        foreach (var m in all)
        {
            AssertUuidV7(m.Json.GetProperty("message_id").GetString());
            AssertUuidV7(m.Json.GetProperty("session").GetString());
        }

        foreach (var copies in all.GroupBy(m => m.Json.GetProperty("message_id").GetString()))
        {
            var firstCopy = copies.First();
            Assert.All(copies, c => Assert.Equal(Identity(firstCopy), Identity(c)));
            Assert.All(copies.Skip(1), c => Assert.True(c.Dup || c.Json.GetProperty("historical").GetBoolean(),
                $"{copies.Key} repeated without the historical mark: {c.Json}"));
        }

        // seq: per (session, source) 1..n with no gap, in message_id order; together exactly one number per good image.
        var distinct = floor.Results.DistinctBy(r => r.Json.GetProperty("message_id").GetString()).ToList();
        Assert.Equal(good.Count, distinct.Count);
        foreach (var stream in distinct.GroupBy(r => (r.Json.GetProperty("session").GetString(), r.Json.GetProperty("source").GetString())))
        {
            var seqs = stream.OrderBy(r => r.Json.GetProperty("message_id").GetString(), StringComparer.Ordinal)
                .Select(r => r.Json.GetProperty("seq").GetInt64()).ToList();
            Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs);
        }

        Assert.Contains(distinct, r => r.Json.GetProperty("session").GetString() == sessionA);
        Assert.Contains(distinct, r => r.Json.GetProperty("session").GetString() == sessionB);
        Assert.Contains(distinct, r => r.Json.GetProperty("historical").GetBoolean()); // the bounce and the replay after the kill

        // Events: the bad files (subject = the file, reason = the code), the copy as a duplicate of the first result,
        // started per session, stopping at the clean stop.
        foreach (var (name, reason) in bad)
        {
            var e = floor.Events("bad_image").First(e => e.Json.GetProperty("details").GetProperty("subject").GetString() == Path.Combine(inbox, name));
            Assert.Equal(reason, e.Json.GetProperty("details").GetProperty("reason").GetString());
            Assert.Equal("warning", e.Json.GetProperty("severity").GetString());
            Assert.Equal("line1", e.Json.GetProperty("source").GetString());
            Assert.True(File.Exists(Path.Combine(inbox, "failed", name)), name);
        }

        var dup = floor.Events("duplicate").First(e => e.Json.GetProperty("details").GetProperty("subject").GetString() == Path.Combine(inbox, "copy-of-first.png"));
        var firstResult = floor.Results.First(r => r.Json.GetProperty("image").GetProperty("id").GetString() == goodNames[0]).Json;
        Assert.Equal(firstResult.GetProperty("message_id").GetString(), dup.Json.GetProperty("details").GetProperty("original_message_id").GetString());
        Assert.Equal(firstResult.GetProperty("image").GetProperty("sha256").GetString(), dup.Json.GetProperty("details").GetProperty("sha256").GetString());
        Assert.Equal([sessionA, sessionB], floor.Events("started").Select(e => e.Json.GetProperty("session").GetString()).Distinct());
        Assert.Equal(sessionB, Assert.Single(floor.Events("stopping")).Json.GetProperty("session").GetString());

        // Payloads: every field of the docs/mqtt.md examples, and no field the docs do not name.
        var model = ModelContract.Load(TestModels.Real);
        var sizes = good.ToDictionary(p => Path.GetFileName(p), p => new FileInfo(p).Length);
        foreach (var r in distinct.Select(d => d.Json))
        {
            var coarse = r.GetProperty("coarse");
            var depth = coarse.GetProperty("depth").GetInt32();
            AssertSameFields(DocExample("Result"), r, optional: ["image.width", "image.height", "latency_ms.queue", "duplicate_of"],
                absentWhen: depth == 0 ? ["coarse.label", "coarse.path", "coarse.confidence", .. CoarseNodeFields] : []);
            Assert.Equal(depth, coarse.GetProperty("nodes").GetArrayLength());
            Assert.Equal(sizes[r.GetProperty("image").GetProperty("id").GetString()!], r.GetProperty("image").GetProperty("bytes").GetInt64());
            Assert.Equal(model.Manifest.Model.Version, r.GetProperty("model").GetProperty("version").GetString());
            Assert.Equal(model.Sha256, r.GetProperty("model").GetProperty("sha256").GetString());
            foreach (var t in new[] { "captured_at", "enqueued_at", "published_at" })
            {
                Assert.Matches(UtcMillis(), r.GetProperty(t).GetString());
            }
        }

        var badEvent = floor.Events("bad_image").First(e => e.Json.GetProperty("details").GetProperty("reason").GetString() == "truncated").Json;
        AssertSameFields(DocExample("Events"), badEvent, optional: ["details.sha256"], absentWhen: []);
        var retainedModel = floor.Messages.Last(m => m.Topic.EndsWith("/model", StringComparison.Ordinal)).Json;
        AssertSameFields(DocExample("Model"), retainedModel, optional: [], absentWhen: []);
        Assert.Equal(model.Manifest.Input.Width, retainedModel.GetProperty("input_width").GetInt32());
        Assert.Equal(model.Manifest.Input.Height, retainedModel.GetProperty("input_height").GetInt32());
        Assert.Equal(128, retainedModel.GetProperty("input_width").GetInt32());
        Assert.Equal(model.Manifest.Decoding.TopK, retainedModel.GetProperty("top_k").GetInt32());
        Assert.True(retainedModel.GetProperty("top_k").GetInt32() > 0);
        Assert.Equal(model.Tree.Depth, retainedModel.GetProperty("temperatures").GetArrayLength());
        Assert.Equal(model.Tree.Depth, retainedModel.GetProperty("thresholds").GetArrayLength());
        Assert.Equal(sessionB, retainedModel.GetProperty("session").GetString());
        var online = floor.Statuses.Last(s => s.State == "online").Json;
        AssertSameFields(DocExample("Status"), online, optional: [], absentWhen: []);
        var stats = floor.Messages.Last(m => m.Topic.EndsWith("/stats", StringComparison.Ordinal)).Json;
        SaveExample("stats-daemon.json", stats);
        AssertSameFields(DocExample("Stats"), stats, optional: ["mqtt.last_error", "mqtt.last_error_at", "mqtt.disconnected_since", "mqtt.outbox.oldest_age_seconds"],
            absentWhen: []);
    }

    /// <summary>Keeps a real payload in artifacts/mqtt-examples for docs/mqtt.md.</summary>
    private static void SaveExample(string name, JsonElement payload)
    {
        var dir = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts", "mqtt-examples")).FullName;
        File.WriteAllText(Path.Combine(dir, name), JsonSerializer.Serialize(payload, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static bool HasResult(FloorSubscriber floor, string? name) =>
        floor.Results.Any(r => r.Json.GetProperty("image").GetProperty("id").GetString() == name);

    private static (string?, long, string?, string?) Identity(FloorMessage m) => (
        m.Json.GetProperty("session").GetString(),
        m.Json.TryGetProperty("seq", out var s) ? s.GetInt64() : 0,
        m.Json.TryGetProperty("image", out var i) ? i.GetProperty("id").GetString() : m.Json.GetProperty("kind").GetString(),
        m.Topic);

    private static void Drop(string inbox, string staging, IEnumerable<string> images)
    {
        foreach (var img in images)
        {
            var tmp = Path.Combine(staging, Path.GetFileName(img));
            File.Copy(img, tmp);
            File.Move(tmp, Path.Combine(inbox, Path.GetFileName(img)));
        }
    }

    private static void DropBad(string inbox, string staging, Dictionary<string, string> bad, string name, byte[] bytes, string reason)
    {
        File.WriteAllBytes(Path.Combine(staging, name), bytes);
        File.Move(Path.Combine(staging, name), Path.Combine(inbox, name));
        bad[name] = reason;
    }

    /// <summary>What docs/mqtt.md promises of an id: 32 lower-case hex digits, UUID version 7, RFC 9562 variant.</summary>
    private static void AssertUuidV7(string? id)
    {
        Assert.NotNull(id);
        Assert.Matches(Hex32(), id);
        Assert.Equal(7, Guid.ParseExact(id, "N").Version);
        Assert.Contains(id[16], "89ab");
    }

    /// <summary>The first JSON example under "### {heading}" in docs/mqtt.md.</summary>
    private static JsonElement DocExample(string heading)
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "mqtt.md"));
        var at = doc.IndexOf("### " + heading, StringComparison.Ordinal);
        Assert.True(at >= 0, "docs/mqtt.md has no ### " + heading);
        var start = doc.IndexOf("```json", at, StringComparison.Ordinal) + "```json".Length;
        var end = doc.IndexOf("```", start, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(doc[start..end]);
        return json.RootElement.Clone();
    }

    /// <summary>The fields of coarse.nodes[] (docs/mqtt.md): none at depth 0, where the array is empty.</summary>
    private static readonly string[] CoarseNodeFields = [.. new[] { "level", "name", "index", "label", "path", "confidence" }.Select(f => $"coarse.nodes[].{f}")];

    /// <summary>The real payload has every field of the docs example and no other, except the listed optional ones;
    /// <paramref name="absentWhen"/> lists documented fields this payload may leave out.</summary>
    private static void AssertSameFields(JsonElement documented, JsonElement real, string[] optional, string[] absentWhen)
    {
        var want = Paths(documented).ToHashSet();
        var got = Paths(real).ToHashSet();
        var missing = want.Except(got).Except(absentWhen).ToList();
        var extra = got.Except(want).Except(optional).ToList();
        Assert.True(missing.Count == 0, $"documented but not sent: {string.Join(", ", missing)} in {real}");
        Assert.True(extra.Count == 0, $"sent but not documented: {string.Join(", ", extra)} in {real}");
    }

    private static IEnumerable<string> Paths(JsonElement e, string prefix = "")
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject())
            {
                var path = prefix.Length == 0 ? p.Name : $"{prefix}.{p.Name}";
                yield return path;
                foreach (var inner in Paths(p.Value, path))
                {
                    yield return inner;
                }
            }
        }
        else if (e.ValueKind == JsonValueKind.Array && prefix.Length > 0 && !prefix.EndsWith(".taxonomy", StringComparison.Ordinal)
            && !prefix.StartsWith("taxonomy", StringComparison.Ordinal))
        {
            foreach (var inner in e.EnumerateArray().SelectMany(x => Paths(x, prefix + "[]")).Distinct())
            {
                yield return inner;
            }
        }
    }

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex Hex32();

    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
    private static partial Regex UtcMillis();
}
