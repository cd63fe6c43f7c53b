using System.Text.RegularExpressions;
using FmaEdge.TestSupport;
using FmaEdge.Train.Cli.Commands;

namespace FmaEdge.Training.Tests;

/// <summary>docs/training.md is a contract: its option table lists exactly the options `fma-train train` takes.</summary>
public partial class TrainingDocsTests
{
    [Fact]
    public void OptionsTable_ListsEveryTrainOption_AndNoOther()
    {
        var docs = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "docs", "training.md"));
        var start = Array.FindIndex(docs, l => l.StartsWith("## `fma-train train` options", StringComparison.Ordinal));
        Assert.True(start >= 0, "docs/training.md has no '## `fma-train train` options' section");
        var rows = docs.Skip(start + 1).SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|')).Skip(2).ToList();
        Assert.NotEmpty(rows);
        var documented = rows.SelectMany(r => OptionName().Matches(r.Split('|')[1]).Select(m => m.Value)).ToHashSet();

        var train = TrainCli.Build().Subcommands.Single(c => c.Name == "train");
        var actual = train.Options.Select(o => o.Name).Where(n => n.StartsWith("--", StringComparison.Ordinal) && n != "--help").ToHashSet();

        Assert.Empty(actual.Except(documented).Order());
        Assert.Empty(documented.Except(actual).Order());
    }

    [GeneratedRegex(@"--[a-z0-9][a-z0-9-]*")]
    private static partial Regex OptionName();
}
