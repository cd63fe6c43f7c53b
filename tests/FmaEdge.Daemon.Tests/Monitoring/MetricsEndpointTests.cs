using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Monitoring;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace FmaEdge.Daemon.Tests.Monitoring;

/// <summary>The Prometheus endpoint of an in-process daemon on real images: what it counts, that promtool accepts the
/// exposition, and each configuration key (docs/configuration.md, Metrics).</summary>
public sealed class MetricsEndpointTests : IDisposable
{
    private readonly TempFolder _tmp = new("metrics");

    public void Dispose() => _tmp.Dispose();

    private static Action<Dictionary<string, string?>> WithMetrics(int port, string? bind = null) => s =>
    {
        s["FmaEdge:Metrics:Enabled"] = "true";
        s["FmaEdge:Metrics:Port"] = port.ToString(CultureInfo.InvariantCulture);
        if (bind is not null)
        {
            s["FmaEdge:Metrics:BindAddress"] = bind;
        }
    };

    [Fact]
    public async Task Scrape_RealAndBadImages_CountsMatchStatusAndPromtoolAccepts()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, WithMetrics(port));
        var images = TestPaths.SampleImages("val").Take(12).ToList();
        d.Drop(images);
        var png = await File.ReadAllBytesAsync(images[0]);
        await File.WriteAllBytesAsync(Path.Combine(d.Inbox, "empty.png"), []);
        await File.WriteAllBytesAsync(Path.Combine(d.Inbox, "truncated.png"), png[..(png.Length / 2)]);
        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.Published == images.Count && d.Pipeline.Failed == 2, "12 results and 2 failures", 60_000);

        var url = $"http://127.0.0.1:{port}/metrics";
        var scrape = await Scrape.GetAsync(url);
        var (exit, output) = scrape.Promtool();
        Assert.True(exit == 0, "promtool check metrics failed:\n" + output + "\n--- exposition ---\n" + scrape.Text);

        var status = d.Status.Snapshot();
        Assert.Equal(images.Count, scrape.Value("fmaedge_images_total", ("source", "line1"), ("outcome", "published")));
        Assert.Equal(2, scrape.Value("fmaedge_images_total", ("source", "line1"), ("outcome", "failed")));
        Assert.Equal(1, scrape.Value("fmaedge_image_failures_total", ("reason", "empty")));
        Assert.Equal(status.Counts.FailedByReason.Sum(kv => kv.Value), scrape.All("fmaedge_image_failures_total").Sum(s => s.Value));

        // Latency: every stored result observed once per stage, in seconds, within the +Inf bucket.
        foreach (var stage in new[] { "decode", "preprocess", "infer", "total" })
        {
            Assert.True(scrape.Value("fmaedge_stage_latency_seconds_count", ("stage", stage)) >= images.Count, stage + " count");
            Assert.Equal(scrape.Value("fmaedge_stage_latency_seconds_count", ("stage", stage)),
                scrape.Value("fmaedge_stage_latency_seconds_bucket", ("stage", stage), ("le", "+Inf")));
        }

        var totalSeconds = scrape.Value("fmaedge_stage_latency_seconds_sum", ("stage", "total"));
        Assert.InRange(totalSeconds / images.Count, 0.0001, 30);
        Assert.Equal(images.Count, scrape.Value("fmaedge_inference_batch_size_sum"));
        Assert.Equal(images.Count, scrape.Value("fmaedge_commit_batch_size_sum"));
        Assert.InRange(scrape.Value("fmaedge_inference_batch_size_count"), 3, images.Count); // MaxBatch 4

        var model = scrape.All("fmaedge_model_info").Single();
        Assert.Equal(1, model.Value);
        Assert.Equal(status.Model!.Id, model.Labels["id"]);
        Assert.Equal(status.Model.Version, model.Labels["version"]);
        Assert.Equal(status.Model.Sha256, model.Labels["sha256"]);
        Assert.Equal("cpu", model.Labels["provider"]);
        Assert.Equal(0, scrape.Value("fmaedge_model_swaps_total"));
        Assert.Equal(0, scrape.Value("fmaedge_model_rejected_total"));

        Assert.Equal(1, scrape.Value("fmaedge_health", ("state", "healthy")));
        Assert.Equal(0, scrape.Value("fmaedge_health", ("state", "degraded")));
        Assert.Equal(1, scrape.Value("fmaedge_output_connected"));
        Assert.Equal(1, scrape.Value("fmaedge_source_up", ("source", "line1"), ("type", "folder")));
        Assert.Equal(images.Count + 2, scrape.Value("fmaedge_source_frames_total", ("source", "line1")));
        Assert.Equal(32, scrape.Value("fmaedge_queue_capacity", ("queue", "input")));
        Assert.Equal(0, scrape.Value("fmaedge_queue_depth", ("queue", "publish")));
        Assert.Equal(1024 * 1024, scrape.Value("fmaedge_disk_floor_bytes")); // Health:DiskFloorMiB 1 in the harness
        var stateDisk = scrape.Value("fmaedge_disk_free_bytes", ("path", Path.Combine(_tmp.Path, "state")));
        Assert.Equal(status.Disks.Single(x => x.Path == Path.Combine(_tmp.Path, "state")).FreeMiB * 1024.0 * 1024.0, stateDisk, 1e9);
        Assert.True(scrape.Value("process_working_set_bytes") > 50e6, "process memory from prometheus-net");
        Assert.True(scrape.Value("fmaedge_resident_memory_bytes") > 50e6, "RSS from /proc");
        Assert.True(scrape.Value("fmaedge_managed_heap_bytes") > 0);
        Assert.Single(scrape.All("fmaedge_build_info", ("node", "test-node")));
        Assert.Equal(0, scrape.Value("fmaedge_outbox_depth")); // the folder output has no outbox: no MQTT series either
        Assert.DoesNotContain(scrape.SeriesNames, n => n.StartsWith("fmaedge_mqtt_", StringComparison.Ordinal));

        // OpenMetrics on request, same families, ends with the mandatory EOF marker.
        var om = await Scrape.GetAsync(url, openMetrics: true);
        Assert.EndsWith("# EOF\n", om.Text, StringComparison.Ordinal);
        Assert.Equal(images.Count, om.Value("fmaedge_images_total", ("source", "line1"), ("outcome", "published")));
        Assert.Single(om.All("fmaedge_model_info"));
    }

    [Fact]
    public async Task Enabled_False_NothingListensOnThePort()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, s =>
        {
            WithMetrics(port)(s);
            s["FmaEdge:Metrics:Enabled"] = "false";
        });
        Assert.Null(d.Services.GetService<DaemonMetrics>());
        Assert.False(await CanConnectAsync(IPAddress.Loopback, port), "no listener when Metrics:Enabled is false");
    }

    [Fact]
    public async Task BindAddress_Default_ServedOnLoopbackOnly()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, WithMetrics(port));
        Assert.Equal("127.0.0.1", d.Services.GetRequiredService<FmaEdgeOptions>().Metrics.BindAddress);
        var scrape = await Scrape.GetAsync($"http://127.0.0.1:{port}/metrics");
        Assert.NotEmpty(scrape.All("fmaedge_build_info"));
        Assert.NotEmpty((await Scrape.GetAsync($"http://localhost:{port}/metrics")).All("fmaedge_build_info"));
        Assert.False(await CanConnectAsync(NonLoopbackAddress(), port), "the default bind must not reach beyond loopback");
    }

    [Fact]
    public async Task BindAddress_AllInterfaces_ServedOnTheMachinesAddress()
    {
        var port = MosquittoBroker.FreeLoopbackPort();
        await using var d = await DaemonHarness.StartAsync(_tmp.Path, WithMetrics(port, "0.0.0.0"));
        var scrape = await Scrape.GetAsync($"http://{NonLoopbackAddress()}:{port}/metrics");
        Assert.NotEmpty(scrape.All("fmaedge_build_info"));
    }

    [Fact]
    public async Task Port_AlreadyTaken_StartFailsNamingTheSetting()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var e = await Assert.ThrowsAnyAsync<Exception>(() => DaemonHarness.StartAsync(_tmp.Path, WithMetrics(port)));
        Assert.Contains("FmaEdge:Metrics", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadBindAddressAndPort_BothListed()
    {
        var o = new FmaEdgeOptions { Metrics = { BindAddress = "localhost", Port = 0 } };
        var errors = FmaEdgeOptionsValidator.Validate(o);
        Assert.Contains(errors, x => x.Contains("FmaEdge:Metrics:BindAddress 'localhost'", StringComparison.Ordinal));
        Assert.Contains(errors, x => x.Contains("FmaEdge:Metrics:Port", StringComparison.Ordinal));
        o.Metrics.BindAddress = "::1";
        o.Metrics.Port = 9464;
        Assert.DoesNotContain(FmaEdgeOptionsValidator.Validate(o), x => x.Contains("Metrics", StringComparison.Ordinal));
    }

    /// <summary>This machine's first IPv4 address that is not loopback (the tests need one to tell the binds apart).</summary>
    private static IPAddress NonLoopbackAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))
        ?? throw new InvalidOperationException("this test needs a non-loopback IPv4 address on the machine");

    private static async Task<bool> CanConnectAsync(IPAddress address, int port)
    {
        using var c = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await c.ConnectAsync(address, port, cts.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
