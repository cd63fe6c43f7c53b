using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Native;
using FmaEdge.Training.Progress;
using FmaEdge.Training.Training;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>fma-train bench: training images/s and peak memory for a model size (a benchmark, not a test).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var o = new TrainCommand.Opts();
        var batches = new Option<int>("--batches") { Description = "Timed batches (after 2 warm-up batches)", DefaultValueFactory = _ => 20 };
        var cmd = new Command("bench", "Measure training throughput (images/s) and peak memory on real data; writes nothing but a temp run.");
        foreach (var opt in o.All().Where(x => x != o.Out && x != o.MaxBatches && x != o.Epochs && x != o.Resume))
        {
            cmd.Options.Add(opt);
        }

        cmd.Options.Add(batches);
        cmd.SetAction(r =>
        {
            var tmp = Path.Combine(Path.GetTempPath(), "fma-train-bench-" + Guid.NewGuid().ToString("N")[..8]);
            try
            {
                TorchNative.EnsureLoaded();
                var n = r.GetValue(batches);
                var baseOptions = o.ToOptions(r) with { RunDir = tmp, Epochs = 1, WarmupEpochs = 0 };
                baseOptions = baseOptions with { Data = baseOptions.Data with { ValDir = null, ValFraction = 0 } };
                var reporter = new TimingReporter();
                new Trainer(baseOptions with { MaxBatchesPerEpoch = n + 2 }, reporter).Run(false, CancellationToken.None);
                var timed = reporter.Times.Skip(2).ToList();
                var imagesPerSec = timed.Count == 0 ? 0 : timed.Sum(t => t.Images) / timed.Sum(t => t.Seconds);
                // CPU time per image is robust to other processes sharing the machine: cores / (CPU s per image)
                // is the rate this run would reach with every core to itself.
                var cpuPerImage = timed.Count == 0 ? 0 : timed.Sum(t => t.CpuSeconds) / timed.Sum(t => t.Images);
                var cores = Environment.ProcessorCount;
                using var p = Process.GetCurrentProcess();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{baseOptions.Model.Model}@{baseOptions.Model.ImageSize} head {baseOptions.Model.Head} loss {baseOptions.Loss} batch {baseOptions.BatchSize} threads {baseOptions.EffectiveThreads}: " +
                    $"{imagesPerSec:F1} training images/s over {timed.Count} batches (wall clock); {cpuPerImage * 1000:F1} CPU-ms per image = " +
                    $"{cores / Math.Max(1e-9, cpuPerImage):F1} images/s on {cores} idle cores; peak working set {p.PeakWorkingSet64 / (1024 * 1024)} MiB"));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or TaxonomyException or InvalidOperationException or TorchNativeException or IOException)
            {
                Console.Error.WriteLine("fma-train bench: " + e.Message);
                return 1;
            }
            finally
            {
                if (Directory.Exists(tmp))
                {
                    Directory.Delete(tmp, recursive: true);
                }
            }
        });
        return cmd;
    }

    /// <summary>Records the wall time of each batch (from one BatchDone to the next).</summary>
    private sealed class TimingReporter : ITrainingReporter
    {
        private readonly Stopwatch _sw = Stopwatch.StartNew();
        private readonly Process _process = Process.GetCurrentProcess();
        private double _last;
        private double _lastCpu;

        public List<(int Images, double Seconds, double CpuSeconds)> Times { get; } = [];

        public void Info(string message) => Console.Error.WriteLine(message);

        public void Warn(string message) => Console.Error.WriteLine("WARNING " + message);

        public void BatchDone(BatchProgress p)
        {
            var now = _sw.Elapsed.TotalSeconds;
            var cpu = _process.TotalProcessorTime.TotalSeconds;
            Times.Add((p.Images, now - _last, cpu - _lastCpu));
            _last = now;
            _lastCpu = cpu;
            _process.Refresh();
        }

        public void EpochDone(EpochRecord record, int epochs)
        {
        }
    }
}
