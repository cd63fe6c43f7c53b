using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>One scrape of a Prometheus endpoint: the text, its samples, and promtool's verdict on it.</summary>
public sealed partial class Scrape
{
    private Scrape(string text)
    {
        Text = text;
        foreach (var line in text.Split('\n'))
        {
            var m = SampleLine().Match(line);
            if (m.Success)
            {
                var labels = LabelPair().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value);
                Samples.Add(new Sample(m.Groups["name"].Value, labels, ParseValue(m.Groups["value"].Value)));
            }
        }
    }

    public string Text { get; }
    public List<Sample> Samples { get; } = [];

    /// <summary>Every series name a scraper may query, from the <c># TYPE</c> lines (so a family with no sample yet
    /// counts): histograms add their _bucket, _sum and _count series.</summary>
    public IReadOnlySet<string> SeriesNames => Text.Split('\n')
        .Select(l => l.Split(' '))
        .Where(p => p.Length == 4 && p[0] == "#" && p[1] == "TYPE")
        .SelectMany(p => p[3] == "histogram" ? new[] { p[2] + "_bucket", p[2] + "_sum", p[2] + "_count" } : new[] { p[2] })
        .ToHashSet();

    /// <summary>GETs <paramref name="url"/> (Prometheus text, or OpenMetrics when <paramref name="openMetrics"/>).</summary>
    public static async Task<Scrape> GetAsync(string url, bool openMetrics = false)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (openMetrics)
        {
            request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");
        }

        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return new Scrape(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Samples named <paramref name="name"/> whose labels include every pair of <paramref name="labels"/>.</summary>
    public IEnumerable<Sample> All(string name, params (string Key, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value));

    /// <summary>The single value of a sample; fails the test naming it when absent.</summary>
    public double Value(string name, params (string Key, string Value)[] labels)
    {
        var found = All(name, labels).ToList();
        Assert.True(found.Count == 1, $"expected one sample {name} {string.Join(",", labels)}, found {found.Count}");
        return found[0].Value;
    }

    /// <summary>Runs <c>promtool check metrics</c> (Debian package prometheus, installed by build.sh) on the text.</summary>
    public (int ExitCode, string Output) Promtool()
    {
        const string exe = "/usr/bin/promtool";
        Assert.True(File.Exists(exe), "promtool missing: run ./build.sh deps (Debian package prometheus)");
        using var p = Process.Start(new ProcessStartInfo(exe, ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(Text);
        p.StandardInput.Close();
        if (!p.WaitForExit(30_000))
        {
            p.Kill();
            Assert.Fail("promtool check metrics did not finish in 30 s");
        }

        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static double ParseValue(string v) => v switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        _ => double.Parse(v, CultureInfo.InvariantCulture),
    };

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>[^ ]+)( [0-9.]+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)""")]
    private static partial Regex LabelPair();
}

public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);
