using System.Text.RegularExpressions;
using FmaEdge.TestSupport;
using FmaEdge.Train.Cli.Commands;

namespace FmaEdge.Training.Tests;

/// <summary>docs/training.md is a contract: its option table lists exactly the options `fma-train train` takes, and the
/// synopses of `quantize`, `calibrate` and `eval` exactly theirs.</summary>
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

    /// <summary>The synopsis of `fma-train COMMAND --model ...` in docs/training.md (a code line and its
    /// backslash continuations, or an inline code span) names exactly the command's options.</summary>
    [Theory]
    [InlineData("quantize")]
    [InlineData("calibrate")]
    [InlineData("eval")]
    public void Synopsis_ListsEveryOptionOfTheCommand_AndNoOther(string command)
    {
        var docs = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "docs", "training.md"));
        var head = $"fma-train {command} --model FILE";
        var first = Array.FindIndex(docs, l => l.Contains(head, StringComparison.Ordinal) || l.StartsWith($"fma-train {command} --model M.onnx", StringComparison.Ordinal));
        Assert.True(first >= 0, $"docs/training.md has no synopsis line 'fma-train {command} --model ...'");
        var text = docs[first];
        for (var i = first + 1; text.TrimEnd().EndsWith('\\') && i < docs.Length; i++)
        {
            text += " " + docs[i];
        }

        var at = text.IndexOf($"fma-train {command}", StringComparison.Ordinal);
        var end = text.IndexOf('`', at);
        var synopsis = end < 0 ? text[at..] : text[at..end];
        var documented = OptionName().Matches(synopsis).Select(m => m.Value).ToHashSet();

        var cmd = TrainCli.Build().Subcommands.Single(c => c.Name == command);
        var actual = cmd.Options.Select(o => o.Name).Where(n => n.StartsWith("--", StringComparison.Ordinal) && n != "--help").ToHashSet();

        Assert.Empty(actual.Except(documented).Order());
        Assert.Empty(documented.Except(actual).Order());
    }

    [GeneratedRegex(@"--[a-z0-9][a-z0-9-]*")]
    private static partial Regex OptionName();
}
