using System.Security.Cryptography;
using System.Text.Json;
using FmaEdge.Cli;
using FmaEdge.Cli.Bench;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using FmaEdge.Vision;
using OpenCvSharp;

namespace FmaEdge.Daemon.Tests.Bench;

/// <summary><c>fma-edge bench</c> end to end on tiny settings (the shipped model, real images, the real daemon with its
/// embedded broker): the JSON report must hold sane, non-zero figures. No timing thresholds: the machine is shared.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private readonly TempFolder _tmp = new("bench");

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Bench_TinySettings_JsonHasSaneNonZeroFigures()
    {
        var images = _tmp.File("images/x");
        foreach (var img in TestPaths.SampleImages("val").Take(6))
        {
            File.Copy(img, Path.Combine(Path.GetDirectoryName(images)!, Path.GetFileName(img)));
        }

        var json = _tmp.File("out/report.json");
        using var o = new StringWriter();
        using var e = new StringWriter();
        string[] args = ["bench", "--model", TestModels.Real, "--images", Path.GetDirectoryName(images)!, "--threads", "1", "--max-batch", "4",
            "--ceiling-seconds", "0.3", "--search-seconds", "0.2", "--set", "Pipeline:PublishCapacity=32", "--count", "12", "--preprocess-repeats", "2", "--swap-seconds", "2", "--json", json, "--timeout", "120"];
        var code = FmaEdgeCli.Run(args, CliConsole.ToWriter(o, e));

        Assert.True(code == 0, $"exit {code}: {e}");
        Assert.Contains("ratio to the best ceiling", o.ToString(), StringComparison.Ordinal);
        Assert.Contains("ratio to the same-settings ceiling", o.ToString(), StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.StartsWith("fma-edge bench --model ", r.GetProperty("command").GetString(), StringComparison.Ordinal);
        Assert.Contains(o.ToString().Split('\n')[0]["command: ".Length..].Trim(), r.GetProperty("command").GetString(), StringComparison.Ordinal);
        Assert.Equal(64, r.GetProperty("model").GetProperty("sha256").GetString()!.Length);

        Assert.Equal(1, r.GetProperty("settings").GetProperty("intra_op_threads").GetInt32());
        Assert.Equal("32", r.GetProperty("settings").GetProperty("overrides").GetProperty("Pipeline:PublishCapacity").GetString());
        var ceiling = r.GetProperty("ceiling");
        Assert.Equal(4, ceiling.GetProperty("batch").GetInt32());
        Assert.Equal(1, ceiling.GetProperty("threads").GetInt32());
        Assert.Equal(Environment.ProcessorCount, ceiling.GetProperty("concurrent").GetInt32()); // as the daemon runs one-thread batches

        // The best-ceiling search: every thread count the process may use, alone and (where cores are left over) as
        // cores / threads runs at once on one session, at batch 1, 2 and 4 (the max batch).
        var search = r.GetProperty("ceiling_search").EnumerateArray()
            .Select(c => (Threads: c.GetProperty("threads").GetInt32(), Concurrent: c.GetProperty("concurrent").GetInt32(), Batch: c.GetProperty("batch").GetInt32(),
                Ips: c.GetProperty("images_per_second").GetDouble()))
            .ToList();
        var cores = Environment.ProcessorCount;
        var shapes = Enumerable.Range(1, cores).SelectMany(t => cores / t > 1 ? new[] { (t, 1), (t, cores / t) } : [(t, 1)]);
        Assert.Equal(shapes.SelectMany(s => new[] { (s.Item1, s.Item2, 1), (s.Item1, s.Item2, 2), (s.Item1, s.Item2, 4) }),
            search.Select(c => (c.Threads, c.Concurrent, c.Batch)));
        Assert.All(search, c => Assert.True(c.Ips > 0));
        var best = r.GetProperty("best_ceiling");
        Assert.Equal(search.Max(c => c.Ips), best.GetProperty("images_per_second").GetDouble());
        // The search picks the configuration; it and the same-settings loop are measured again right before and right
        // after the timed run, in the same shape.
        static void MeasuredAgain(JsonElement first, JsonElement again)
        {
            foreach (var field in new[] { "threads", "concurrent", "batch" })
            {
                Assert.Equal(first.GetProperty(field).GetInt32(), again.GetProperty(field).GetInt32());
            }

            Assert.True(again.GetProperty("images_per_second").GetDouble() > 0);
        }

        var bestBefore = r.GetProperty("best_ceiling_before");
        var bestAfter = r.GetProperty("best_ceiling_after");
        var ceilingBefore = r.GetProperty("ceiling_before");
        var ceilingAfter = r.GetProperty("ceiling_after");
        MeasuredAgain(best, bestBefore);
        MeasuredAgain(best, bestAfter);
        MeasuredAgain(ceiling, ceilingBefore);
        MeasuredAgain(ceiling, ceilingAfter);

        Assert.True(ceiling.GetProperty("runs").GetInt32() >= 3);
        Assert.True(ceiling.GetProperty("images_per_second").GetDouble() > 0);
        Assert.True(r.GetProperty("ceiling_batch1").GetProperty("images_per_second").GetDouble() > 0);

        var p = r.GetProperty("pipeline");
        Assert.Equal(12, p.GetProperty("images").GetInt32());
        Assert.Equal(12, p.GetProperty("received").GetInt32());
        Assert.True(p.GetProperty("images_per_second").GetDouble() > 0);
        Assert.InRange(p.GetProperty("ratio").GetDouble(), 1e-6, 10);
        static double Ips(JsonElement c) => c.GetProperty("images_per_second").GetDouble();
        var pipelineIps = p.GetProperty("images_per_second").GetDouble();
        Assert.Equal(pipelineIps / ((Ips(bestBefore) + Ips(bestAfter)) / 2), p.GetProperty("ratio_to_best").GetDouble(), 9);
        Assert.Equal(pipelineIps / ((Ips(ceilingBefore) + Ips(ceilingAfter)) / 2), p.GetProperty("ratio").GetDouble(), 9);
        Assert.InRange(p.GetProperty("mean_batch").GetDouble(), 1, 4);
        Assert.True(p.GetProperty("cpu_ms_per_image").GetDouble() > 0);
        Assert.True(p.GetProperty("cpu").GetProperty("threads").GetArrayLength() > 0);
        Assert.True(ceiling.GetProperty("cpu_ms_per_image").GetDouble() > 0);
        // Warm-up: whole rounds of max(64, 16 x MaxBatch) images through the pipeline until the JIT goes quiet.
        var warm = p.GetProperty("warm_up");
        var rounds = warm.GetProperty("rounds").GetInt32();
        Assert.InRange(rounds, 1, 12);
        Assert.Equal(64 * rounds, warm.GetProperty("images").GetInt32());
        Assert.True(warm.GetProperty("seconds").GetDouble() > 0);
        Assert.True(warm.GetProperty("jit_ms_during_run").GetDouble() >= 0);
        Assert.Contains($"warm-up: {64 * rounds} images in {rounds} round(s)", o.ToString(), StringComparison.Ordinal);
        foreach (var part in new[] { "backlog", "steady" })
        {
            var stages = p.GetProperty(part);
            foreach (var stage in new[] { "source_wait", "decode", "preprocess", "queue_wait", "inference", "publish", "end_to_end" })
            {
                var s = stages.GetProperty(stage);
                Assert.True(s.GetProperty("samples").GetInt32() > 0, $"{part} {stage} has samples");
                Assert.True(s.GetProperty("p50").GetDouble() >= 0 && s.GetProperty("p99").GetDouble() >= s.GetProperty("p50").GetDouble(), $"{part} {stage}");
            }

            foreach (var stage in new[] { "decode", "inference", "publish", "end_to_end" })
            {
                Assert.True(stages.GetProperty(stage).GetProperty("p50").GetDouble() > 0, $"{part} {stage} takes time");
            }

            // End to end covers every stage.
            Assert.True(stages.GetProperty("end_to_end").GetProperty("max").GetDouble() >= stages.GetProperty("inference").GetProperty("p50").GetDouble());
        }

        var pre = r.GetProperty("preprocess").EnumerateArray().ToList();
        Assert.Equal(["small 200x200 png", "small 200x200 jpeg", "large 2448x2048 png", "large 2448x2048 jpeg"],
            pre.Select(x => $"{x.GetProperty("name").GetString()} {x.GetProperty("width").GetInt32()}x{x.GetProperty("height").GetInt32()} {x.GetProperty("format").GetString()}"));
        Assert.All(pre, x => Assert.True(x.GetProperty("decode_ms").GetProperty("p50").GetDouble() > 0 && x.GetProperty("preprocess_ms").GetProperty("p50").GetDouble() > 0));
        // A 5-megapixel image costs more to decode than a 200x200 one.
        Assert.True(pre[2].GetProperty("decode_ms").GetProperty("p50").GetDouble() > pre[0].GetProperty("decode_ms").GetProperty("p50").GetDouble());

        var swap = r.GetProperty("swap");
        Assert.Equal(0, swap.GetProperty("lost").GetInt32());
        Assert.True(swap.GetProperty("new_model_results").GetInt32() > 0, "the new model served");
        Assert.True(swap.GetProperty("old_model_results").GetInt32() > 0, "the old model served first");
        Assert.Equal(swap.GetProperty("images").GetInt32(), swap.GetProperty("old_model_results").GetInt32() + swap.GetProperty("new_model_results").GetInt32());
        Assert.True(swap.GetProperty("first_new_model_seconds").GetDouble() > 0);
        Assert.True(swap.GetProperty("stall_ms").GetDouble() > 0);
        Assert.True(swap.GetProperty("stream_rate").GetDouble() > 0);
    }

    [Theory]
    [InlineData("png", ".png")]
    [InlineData("jpeg", ".jpg")]
    public void MakeLarge_RealImages_CameraSizedFilesTheDaemonDecodes(string format, string ext)
    {
        var sources = TestPaths.SampleImages("val").Take(5).ToList();
        var made = BenchImages.MakeLarge(sources, _tmp.File("large/x"), format, 3, 2448, 2048);

        Assert.Equal(3, made.Count);
        Assert.All(made, f =>
        {
            Assert.EndsWith(ext, f, StringComparison.Ordinal);
            using var rgb = ImageDecoder.LoadRgb(f);
            Assert.Equal((2448, 2048), (rgb.Width, rgb.Height));
        });
        Assert.Equal(3, made.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))).Distinct().Count());
    }

    [Fact]
    public void Bench_InvalidOptions_Exit2NamingEachProblem()
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        var code = FmaEdgeCli.Run(["bench", "--model", _tmp.File("missing.onnx"), "--images", TestPaths.DatasetVal, "--count", "0", "--broker", "nohost",
            "--search-seconds", "0", "--set", "Inference:IntraOpThreads=2", "--large", "tiff"], CliConsole.ToWriter(o, e));
        Assert.Equal(2, code);
        Assert.Contains("--search-seconds 0", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("--large 'tiff' is not png or jpeg", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("--set Inference:IntraOpThreads: use --threads", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("missing.onnx", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("--count 0", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("--broker 'nohost'", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Tag_RealPngAndJpeg_SamePixelsOtherBytes()
    {
        var png = TestPaths.SampleImages("val")[0];
        var bytes = File.ReadAllBytes(png);
        var a = BenchImages.Tag(bytes, "a1");
        var b = BenchImages.Tag(bytes, "b2");
        Cv2.ImEncode(".jpg", Cv2.ImRead(png), out var jpeg);
        var j = BenchImages.Tag(jpeg, "j1");

        Assert.NotEqual(SHA256.HashData(a), SHA256.HashData(b));
        Assert.NotEqual(SHA256.HashData(bytes), SHA256.HashData(a));
        using var original = ImageDecoder.DecodeRgb(bytes);
        using var tagged = ImageDecoder.DecodeRgb(a);
        using var diff = new Mat();
        Cv2.Absdiff(original, tagged, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff.Reshape(1)));
        using var jo = ImageDecoder.DecodeRgb(jpeg);
        using var jt = ImageDecoder.DecodeRgb(j);
        Cv2.Absdiff(jo, jt, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff.Reshape(1)));
        Assert.Throws<InvalidDataException>(() => BenchImages.Tag("GIF89a....."u8.ToArray(), "x"));
    }

    [Fact]
    public void Stage_MoreCopiesThanOriginals_DistinctContentAndNames()
    {
        var sources = TestPaths.SampleImages("val").Take(3).ToList();
        var written = BenchImages.Stage(sources, _tmp.File("staged"), 7, "soak");
        Assert.Equal(7, written.Count);
        Assert.Equal(7, written.Select(Path.GetFileName).Distinct().Count());
        Assert.Equal(7, written.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))).Distinct().Count());
        Assert.StartsWith("soak000003-", Path.GetFileName(written[3]), StringComparison.Ordinal);
        Assert.EndsWith(Path.GetFileName(sources[0]), written[3], StringComparison.Ordinal);
    }
}
