using System.Globalization;
using FmaEdge.Training.Training;

namespace FmaEdge.Training.Progress;

/// <summary>A progress snapshot after a batch.</summary>
public sealed record BatchProgress(int Epoch, int Epochs, int Batch, int Batches, int Images, float[] LossPerLevel, float Loss, double ImagesPerSec, TimeSpan EpochEta, double Lr);

/// <summary>Receives training progress. Called from the training thread only.</summary>
public interface ITrainingReporter
{
    void Info(string message);

    void Warn(string message);

    void BatchDone(BatchProgress p);

    void EpochDone(EpochRecord record, int epochs);
}

/// <summary>Plain log lines (for files, CI, pipes): a line every ~10 % of an epoch or 30 s, and one per epoch.
/// Not thread-safe.</summary>
public sealed class PlainReporter(TextWriter output) : ITrainingReporter
{
    private DateTime _last = DateTime.MinValue;

    public void Info(string message) => output.WriteLine($"{Stamp()} {message}");

    public void Warn(string message) => output.WriteLine($"{Stamp()} WARNING {message}");

    public void BatchDone(BatchProgress p)
    {
        var step = Math.Max(1, p.Batches / 10);
        if (p.Batch % step != 0 && p.Batch != p.Batches && DateTime.UtcNow - _last < TimeSpan.FromSeconds(30))
        {
            return;
        }

        _last = DateTime.UtcNow;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Stamp()} epoch {p.Epoch}/{p.Epochs} batch {p.Batch}/{p.Batches} loss {p.Loss:F4} [{Format.Levels(p.LossPerLevel)}] lr {p.Lr:G3} {p.ImagesPerSec:F1} img/s eta {Format.Span(p.EpochEta)}"));
    }

    public void EpochDone(EpochRecord r, int epochs)
    {
        var val = r.ValTop1 is null ? "" : string.Create(CultureInfo.InvariantCulture, $" val_loss {r.ValLoss:F4} val_top1 [{string.Join(" ", r.ValTop1.Select(v => (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"))}]");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Stamp()} epoch {r.Epoch}/{epochs} done in {r.Seconds:F0}s: train_loss {r.TrainLoss:F4} [{Format.Levels(r.TrainLossPerLevel.Select(x => (float)x))}]{val} {r.ImagesPerSec:F1} img/s"));
    }

    private static string Stamp() => DateTime.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
}

internal static class Format
{
    public static string Levels(IEnumerable<float> xs) => string.Join(" ", xs.Select(x => x.ToString("F3", CultureInfo.InvariantCulture)));

    public static string Span(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);
}
