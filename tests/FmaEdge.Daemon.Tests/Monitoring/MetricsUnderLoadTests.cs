using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Monitoring;

/// <summary>The real <c>fma-edge run</c> process publishing to a real mosquitto, scraped while it works through real
/// images: every scrape must pass <c>promtool check metrics</c>, and the outbox and connection metrics must follow a
/// broker outage.</summary>
public sealed class MetricsUnderLoadTests
{
    [Fact]
    public async Task Run_ScrapedUnderLoadAcrossABrokerOutage_EveryScrapePassesPromtoolAndOutboxIsVisible()
    {
        using var tmp = new TempFolder("metrics-load");
        var root = tmp.Path;
        var images = TestPaths.SampleImages("train", perLeaf: 8).Take(160).ToList();
        await using var broker = await MosquittoBroker.StartNewAsync();
        await broker.StopAsync(); // results go to the outbox first
        var port = MosquittoBroker.FreeLoopbackPort();
        var settings = DaemonHarness.Settings(root, s =>
        {
            s["FmaEdge:Output:Type"] = "mqtt";
            s.Remove("FmaEdge:Output:Path");
            s["FmaEdge:Mqtt:Host"] = broker.Host;
            s["FmaEdge:Mqtt:Port"] = broker.Port.ToString(CultureInfo.InvariantCulture);
            s["FmaEdge:Mqtt:Embedded:Enabled"] = "false";
            s["FmaEdge:Mqtt:ReconnectMinSeconds"] = "1";
            s["FmaEdge:Mqtt:ReconnectMaxSeconds"] = "1";
            s["FmaEdge:Metrics:Enabled"] = "true";
            s["FmaEdge:Metrics:Port"] = port.ToString(CultureInfo.InvariantCulture);
        });
        var (config, _) = await ProcessTests.PrepareAsync(root, settings, images);
        var url = $"http://127.0.0.1:{port}/metrics";

        using var daemon = ProcessTests.Start(config);
        try
        {
            var scrapes = 0;
            var maxDepth = 0.0;
            var maxAge = 0.0;
            var brokerStarted = false;
            double? outageBase = null; // results published by a scrape during the outage
            var sw = Stopwatch.StartNew();
            while (true)
            {
                Assert.False(daemon.HasExited, "fma-edge run exited");
                Assert.True(sw.Elapsed < TimeSpan.FromMinutes(4), $"not done after 4 min; {scrapes} scrapes, outbox max {maxDepth}");
                Scrape scrape;
                try
                {
                    scrape = await Scrape.GetAsync(url);
                }
                catch (HttpRequestException) when (scrapes == 0)
                {
                    await Task.Delay(200); // not listening yet
                    continue;
                }

                scrapes++;
                var (exit, output) = scrape.Promtool();
                Assert.True(exit == 0, $"scrape {scrapes}: promtool check metrics failed:\n{output}\n--- exposition ---\n{scrape.Text}");
                var published = scrape.All("fmaedge_images_total", ("outcome", "published")).Sum(s => s.Value);
                var depth = scrape.Value("fmaedge_outbox_depth");
                maxDepth = Math.Max(maxDepth, depth);
                maxAge = Math.Max(maxAge, scrape.Value("fmaedge_outbox_oldest_age_seconds"));
                if (!brokerStarted)
                {
                    Assert.Equal(0, scrape.Value("fmaedge_mqtt_connection_state", ("state", "connected")));
                    Assert.Equal(0, scrape.Value("fmaedge_output_connected"));
                    if (outageBase is { } seen)
                    {
                        // Counters and the depth gauge are not read at one instant, so compare with the count of an
                        // earlier scrape: all of those results must still wait in the outbox.
                        Assert.True(depth >= seen, $"with the broker down every result waits in the outbox ({depth} < {seen})");
                        await broker.StartAsync();
                        brokerStarted = true;
                    }
                    else if (published >= images.Count / 2)
                    {
                        outageBase = published;
                    }
                }
                else if (published == images.Count && depth == 0 && scrape.Value("fmaedge_mqtt_connection_state", ("state", "connected")) == 1)
                {
                    Assert.True(scrape.Value("fmaedge_mqtt_acked_total") >= images.Count);
                    Assert.True(scrape.Value("fmaedge_mqtt_replayed_total") >= images.Count / 2, "results stored during the outage count as replayed");
                    Assert.Equal(0, scrape.Value("fmaedge_outbox_oldest_age_seconds"));
                    Assert.Equal(images.Count, scrape.Value("fmaedge_stage_latency_seconds_count", ("stage", "total")));
                    AssertDashboardNamesOnlyServedMetrics(scrape);
                    break;
                }

                await Task.Delay(250);
            }

            Assert.True(maxDepth >= images.Count / 2, $"outbox depth seen {maxDepth}");
            Assert.True(maxAge > 0, "age of the oldest unsent result seen");
            // Two scrapes during the outage (a base, then the check) and one after the drain.
            Assert.True(scrapes >= 3, $"only {scrapes} scrapes");
        }
        finally
        {
            daemon.Kill();
            await daemon.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>The example Grafana dashboard (untested in Grafana) must at least ask for metrics that exist.</summary>
    private static void AssertDashboardNamesOnlyServedMetrics(Scrape scrape)
    {
        var path = Path.Combine(TestPaths.RepoRoot, "docs", "grafana", "fma-edge-dashboard.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var exprs = doc.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .Select(t => t.GetProperty("expr").GetString()!)
            .Append(doc.RootElement.GetProperty("templating").GetProperty("list")[1].GetProperty("query").GetString()!)
            .ToList();
        Assert.True(exprs.Count >= 12, "dashboard queries");
        var served = scrape.SeriesNames;
        var named = exprs.SelectMany(e => Regex.Matches(e, "fmaedge_[a-z_]+").Select(m => m.Value)).Distinct().ToList();
        Assert.DoesNotContain(named, n => !served.Contains(n));
    }
}
