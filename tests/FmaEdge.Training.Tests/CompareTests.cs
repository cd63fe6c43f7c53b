using System.Text.Json;
using FmaEdge.TestSupport;
using FmaEdge.Training.Compare;
using FmaEdge.Training.Evaluation;
using FmaEdge.Training.Training;

namespace FmaEdge.Training.Tests;

/// <summary>`fma-train compare` end to end on a tiny real grid: child trainer processes, outputs, resume.</summary>
public class CompareTests
{
    [Fact]
    public void Run_TinyGrid_WritesEveryOutputAndRerunSkipsFinishedAndResumesUnfinishedRows()
    {
        using var dir = new TempFolder("compare");
        var train = TrainerTests.SubsetFolder(dir, "train", 2);
        var val = TrainerTests.SubsetFolder(dir, "val", 1);
        var gridDir = Path.Combine(dir.Path, "grid");
        var rows = CompareGrid.Cross(["convnext_atto", "vit_tiny"], ["flat", "shared"], ["bcnn"], [0]);
        var options = new CompareOptions
        {
            OutDir = gridDir,
            Rows = rows,
            Recipe = ["--data", train, "--val", val, "--img-size", "32", "--epochs", "1", "--batch", "8", "--max-batches", "2", "--warmup-epochs", "0"],
            TrainerCommand = ["dotnet", Path.Combine(AppContext.BaseDirectory, "fma-train.dll")],
        };

        var log = new StringWriter();
        var results = new CompareRunner(options, log).Run(CancellationToken.None);

        Assert.True(results.Complete, log.ToString());
        Assert.Equal(4, results.Rows.Count);
        Assert.Equal(4, results.Configs.Count);
        foreach (var row in results.Rows)
        {
            Assert.Equal(3, row.Levels.Count);
            foreach (var l in row.Levels)
            {
                Assert.All(l.TopK.Append(l.PathDecoded), v => Assert.InRange(v, 0, 1));
                Assert.True(l.Top1 <= l.Top2 && l.Top2 <= l.Top3 && l.Top3 <= l.Top4 && l.Top4 <= l.Top5, $"{row.Id}: top-k not monotone");
            }

            Assert.Equal(21, row.ValImages);
            Assert.InRange(row.PathAccuracy, 0, 1);
            Assert.InRange(row.Consistency, 0, 1);
            Assert.InRange(row.MistakeSeverity, 0, 3);
            Assert.Equal(3, row.CoverageByLevel.Count);
            Assert.All(row.CoverageByLevel, c => Assert.InRange(c, 0, 1));
            Assert.InRange(row.TrainSeconds, 0.01, 600);
            Assert.Equal(new FileInfo(Path.Combine(CompareRunner.RowDir(gridDir, CompareRow.Create(row.Model, row.Head, row.Loss, row.Seed)), "model.onnx")).Length, row.ModelBytes);
            Assert.InRange(row.PeakRssBytes ?? 0, 100L << 20, 8L << 30);
            Assert.True(row.Parameters > row.BackboneParameters && row.BackboneParameters > 1_000_000, $"{row.Id}: parameters {row.Parameters}/{row.BackboneParameters}");
            // bcnn = ce with the B-CNN schedule: the trainer ran with --bcnn.
            Assert.True(Checkpoint.ReadState(Trainer.LastDir(Path.Combine(gridDir, row.Id))).Options.BCnn);
        }

        var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(gridDir, CompareReport.JsonFile)));
        Assert.Equal(4, doc.RootElement.GetProperty("rows").GetArrayLength());
        var md = File.ReadAllText(Path.Combine(gridDir, CompareReport.MarkdownFile));
        Assert.Contains("## L3", md);
        Assert.Contains("Training environment", md);
        Assert.Contains("| vit_tiny | shared | bcnn | 1 |", md);
        var html = File.ReadAllText(Path.Combine(gridDir, CompareReport.HtmlFile));
        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.Contains("<svg", html);
        Assert.DoesNotContain("<script", html);

        // Rerun: every row is skipped, nothing is retrained.
        var stamps = rows.ToDictionary(r => r.Id, r => File.GetLastWriteTimeUtc(Path.Combine(gridDir, r.Id, Trainer.HistoryFile)));
        var log2 = new StringWriter();
        var again = new CompareRunner(options, log2).Run(CancellationToken.None);
        Assert.Equal(4, again.Rows.Count);
        Assert.Equal(4, log2.ToString().Split('\n').Count(l => l.Contains("finished earlier, skipped", StringComparison.Ordinal)));

        // An unfinished row (its row.json and model gone, its checkpoint kept) resumes instead of starting over.
        var unfinished = Path.Combine(gridDir, rows[1].Id);
        File.Delete(Path.Combine(unfinished, CompareRunner.RowFile));
        File.Delete(Path.Combine(unfinished, "model.onnx"));
        var log3 = new StringWriter();
        var third = new CompareRunner(options, log3).Run(CancellationToken.None);
        Assert.True(third.Complete, log3.ToString());
        Assert.Contains($"{rows[1].Id}: resuming", log3.ToString());
        Assert.Equal(3, log3.ToString().Split('\n').Count(l => l.Contains("finished earlier, skipped", StringComparison.Ordinal)));
        Assert.True(File.Exists(Path.Combine(unfinished, "model.onnx")));
        Assert.Single(TrainingHistory.Load(Path.Combine(unfinished, Trainer.HistoryFile)).Epochs);
        foreach (var r in rows.Where(r => r != rows[1]))
        {
            Assert.Equal(stamps[r.Id], File.GetLastWriteTimeUtc(Path.Combine(gridDir, r.Id, Trainer.HistoryFile)));
        }
    }

    [Fact]
    public void Load_GridFile_ExpandsSeedsAndCanonicalisesNames()
    {
        using var dir = new TempFolder("grid-file");
        var path = dir.File("grid.yaml");
        File.WriteAllText(path, "- {model: atto, head: flat, loss: bcnn, seeds: [0, 1]}\n- {model: resnet50_cbam, head: shared, loss: dhc-soft}\n");

        var rows = CompareGrid.Load(path);

        Assert.Equal(
            [new CompareRow("convnext_atto", "flat", "bcnn", 0), new CompareRow("convnext_atto", "flat", "bcnn", 1), new CompareRow("resnet50_cbam", "shared", "dhc-soft", 0)],
            rows);
        File.WriteAllText(path, "[{\"model\": \"vit_tiny\", \"loss\": \"nope\"}]");
        Assert.Throws<ArgumentException>(() => CompareGrid.Load(path));
        Assert.Throws<ArgumentException>(() => new CompareOptions { Rows = rows, TrainerCommand = ["x"], Recipe = ["--data", "d", "--seed", "3"] }.Validate());
    }
}
