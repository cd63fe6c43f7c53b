using System.Globalization;
using FmaEdge.Training.Training;
using Spectre.Console;

namespace FmaEdge.Training.Progress;

/// <summary>Live terminal progress (Spectre.Console): one bar per epoch with loss per level, images/s and ETA.
/// Create inside AnsiConsole.Progress().Start(ctx => ...). Not thread-safe.</summary>
public sealed class SpectreReporter(ProgressContext context) : ITrainingReporter
{
    private ProgressTask? _task;
    private int _epoch;

    public void Info(string message) => AnsiConsole.MarkupLine("[grey]" + Markup.Escape(message) + "[/]");

    public void Warn(string message) => AnsiConsole.MarkupLine("[yellow]" + Markup.Escape(message) + "[/]");

    public void BatchDone(BatchProgress p)
    {
        if (_task is null || _epoch != p.Epoch)
        {
            _epoch = p.Epoch;
            _task = context.AddTask($"epoch {p.Epoch}/{p.Epochs}", maxValue: p.Batches);
        }

        _task.Value = p.Batch;
        _task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F3} [{Format.Levels(p.LossPerLevel)}] {p.ImagesPerSec:F0} img/s eta {Format.Span(p.EpochEta)}"));
    }

    public void EpochDone(EpochRecord r, int epochs)
    {
        _task?.StopTask();
        var val = r.ValTop1 is null ? "" : " val top-1 " + string.Join(" / ", r.ValTop1.Select(v => (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"));
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"epoch {r.Epoch}/{epochs}: train loss {r.TrainLoss:F4}{val}, {r.ImagesPerSec:F0} img/s, {r.Seconds:F0}s")));
    }
}
