using System.Reflection;
using System.Text.RegularExpressions;
using FmaEdge.TestSupport;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Hosting;

/// <summary>The log event ids in the code against the table in docs/operations.md: journal queries and alerts rely on
/// them, so every id is unique across the product, documented, and inside the range the table gives its area.</summary>
public sealed partial class LogEventIdTests
{
    private static readonly Assembly[] Product =
    [
        typeof(FmaEdge.Daemon.Hosting.FmaEdgeHost).Assembly,
        typeof(FmaEdge.Messaging.Publishing.MqttPublisher).Assembly,
        typeof(FmaEdge.Inference.OnnxClassifier).Assembly,
        typeof(FmaEdge.Cli.CliConsole).Assembly,
    ];

    private static List<(int Id, string Where)> CodeIds() =>
        Product.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attr: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attr is not null)
            .Select(x => (x.Attr!.EventId, $"{x.Method.DeclaringType!.FullName}.{x.Method.Name}"))
            .ToList();

    /// <summary>Rows of the "Logs" table: (range start, range end, documented ids).</summary>
    private static List<(int From, int To, List<int> Ids)> DocRows()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "operations.md"));
        var logs = doc[doc.IndexOf("## Logs", StringComparison.Ordinal)..];
        return [.. RangeRow().Matches(logs).Select(m => (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value),
            NotableId().Matches(m.Groups[3].Value).Select(i => int.Parse(i.Groups[1].Value)).ToList()))];
    }

    [Fact]
    public void EventIds_AcrossDaemonAndMessaging_AreUnique()
    {
        var ids = CodeIds();
        Assert.True(ids.Count > 40, $"found only {ids.Count} log methods");
        var clashes = ids.GroupBy(i => i.Id).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => x.Where))}").ToList();
        Assert.True(clashes.Count == 0, "event ids used twice: " + string.Join("; ", clashes));
    }

    [Fact]
    public void EventIds_InCode_AreTheDocumentedOnesInTheirAreasRange()
    {
        var rows = DocRows();
        Assert.True(rows.Count >= 7, $"docs/operations.md Logs table has {rows.Count} rows");
        var documented = rows.SelectMany(r => r.Ids).ToList();
        Assert.Equal(documented.Count, documented.Distinct().Count());
        foreach (var (from, to, ids) in rows)
        {
            Assert.All(ids, id => Assert.InRange(id, from, to));
        }

        var code = CodeIds();
        var undocumented = code.Where(c => !documented.Contains(c.Id)).Select(c => $"{c.Id} ({c.Where})").ToList();
        Assert.True(undocumented.Count == 0, "logged but not in docs/operations.md: " + string.Join(", ", undocumented));
        var unused = documented.Where(d => code.All(c => c.Id != d)).ToList();
        Assert.True(unused.Count == 0, "documented but never logged: " + string.Join(", ", unused));
    }

    [GeneratedRegex(@"^\| (\d{4})-(\d{4}) \|[^|]*\|([^|]*)\|", RegexOptions.Multiline)]
    private static partial Regex RangeRow();

    [GeneratedRegex(@"\b(\d{4}) [a-z]")]
    private static partial Regex NotableId();
}
