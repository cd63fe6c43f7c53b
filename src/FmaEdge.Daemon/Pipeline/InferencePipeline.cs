using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.Channels;
using FmaEdge.Core.Decoding;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Sources;
using FmaEdge.Messaging.Contract;
using FmaEdge.Vision;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace FmaEdge.Daemon.Pipeline;

/// <summary>Images from sources to committed results in three stages joined by bounded channels:
/// decode + preprocess (on several workers, handed on in order) -> batched inference (normal-priority threads, see
/// <see cref="InferenceThreads"/>; as many batches at once as the model allows, handed on in order) -> commit/publish. Arrival order is kept end to end; bounded channels keep memory
/// flat (file sources wait when the input is full). Models swap only between batches. <see cref="WriteAsync"/> is thread-safe; Start and Drain are called once each by the host.</summary>
public sealed class InferencePipeline : IImageSink, IDisposable
{
    private readonly FmaEdgeOptions _options;
    private readonly ModelManager _models;
    private readonly IResultSink _sink;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly string _node;
    private readonly DecodeLimits _limits;
    private readonly Channel<ImageWork> _input;
    private readonly Channel<Item> _toInfer;
    private readonly Channel<Item> _toPublish;
    private Task? _stages;
    private Task[] _stageTasks = [];
    private volatile bool _draining;
    private CancellationTokenSource? _abort;
    private Timer? _lowering;

    private long _accepted;
    private long _published;
    private long _failed;
    private long _duplicates;
    private long _skipped;
    private long _abandoned;
    private long _batches;
    private long _batchedImages;
    private long _decoded;                           // images the decode stage has handed to inference

    // Inference workers (see InferWorker): one at a time gathers a batch; _order guards the run and hand-on counters.
    private readonly Lock _batchTurn = new();
    private readonly object _order = new();
    private int _running;                            // batches taken and not yet handed on
    private long _nextTicket;                        // the ticket of the next batch taken
    private long _nextToHandOn;                      // the ticket whose items go to the publish stage next
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _failedByReason = new(StringComparer.Ordinal);

    public InferencePipeline(FmaEdgeOptions options, ModelManager models, IResultSink sink, ILogger<InferencePipeline> log,
        DaemonSession session, TimeProvider? time = null)
    {
        _options = options;
        _models = models;
        _sink = sink;
        _log = log;
        _time = time ?? TimeProvider.System;
        _node = options.EffectiveNodeName;
        _limits = new DecodeLimits { MaxBytes = options.Pipeline.MaxImageBytes };
        Heartbeats = [new("decode"), new("infer", InferWorkers), new("publish")];
        var p = options.Pipeline;
        _input = Channel.CreateBounded<ImageWork>(new BoundedChannelOptions(p.InputCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _toInfer = Channel.CreateBounded<Item>(new BoundedChannelOptions(p.InferCapacity) { SingleReader = true, SingleWriter = true });
        _toPublish = Channel.CreateBounded<Item>(new BoundedChannelOptions(p.PublishCapacity) { SingleReader = true, SingleWriter = true });
    }

    /// <summary>Per-stage heartbeats for the watchdog.</summary>
    public StageHeartbeat[] Heartbeats { get; }

    public LatencyRecorder DecodeLatency { get; } = new();
    public LatencyRecorder PreprocessLatency { get; } = new();
    public LatencyRecorder InferLatency { get; } = new();
    public LatencyRecorder TotalLatency { get; } = new();

    /// <summary>Images whose result was committed.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Images set aside (bad image, inference error).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Images set aside since start, by reason code (empty, truncated, symlink, ...); a snapshot copy.</summary>
    public IReadOnlyDictionary<string, long> FailedByReason => new SortedDictionary<string, long>(_failedByReason, StringComparer.Ordinal);

    /// <summary>Images reported as duplicates of an earlier result.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Images skipped silently because the journal already had them (leave mode after a restart).</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Images accepted and not yet finished.</summary>
    public long InFlight => Interlocked.Read(ref _accepted) - Published - Failed - Duplicates - Skipped - Abandoned;

    /// <summary>Images handed back unfinished (result could not be stored); their files are retried.</summary>
    public long Abandoned => Interlocked.Read(ref _abandoned);

    /// <summary>Mean images per inference batch.</summary>
    public double MeanBatch => Interlocked.Read(ref _batches) == 0 ? 0 : (double)Interlocked.Read(ref _batchedImages) / Interlocked.Read(ref _batches);

    /// <summary>Current depth of each queue (input, infer, publish).</summary>
    public (int Input, int Infer, int Publish) QueueDepths => (_input.Reader.Count, _toInfer.Reader.Count, _toPublish.Reader.Count);

    /// <summary>Queue capacities in the same order.</summary>
    public (int Input, int Infer, int Publish) QueueCapacities =>
        (_options.Pipeline.InputCapacity, _options.Pipeline.InferCapacity, _options.Pipeline.PublishCapacity);

    /// <summary>Raised after each image finishes (any outcome); for tests, tools and metrics. Must not block.</summary>
    public event Action<ImageWork, WorkOutcome>? Finished;

    /// <summary>Raised with the number of images of each inference run (metrics). Must not block.</summary>
    public event Action<int>? InferenceBatched;

    /// <summary>Raised with the number of results stored in each group commit (metrics). Must not block.</summary>
    public event Action<int>? CommitBatched;

    public async ValueTask WriteAsync(ImageWork work, CancellationToken cancellationToken)
    {
        // Counted before the hand-over so InFlight never reads 0 while the image is already in the channel.
        Interlocked.Increment(ref _accepted);
        try
        {
            await _input.Writer.WriteAsync(work, cancellationToken);
        }
        catch
        {
            Interlocked.Decrement(ref _accepted);
            throw;
        }
    }

    /// <summary>Why images were last handed back unfinished, and when (UTC); null when never.</summary>
    public (string Reason, DateTimeOffset AtUtc)? LastAbandon { get; private set; }

    /// <summary>True when a stage ended although no drain was asked for: the pipeline no longer works.</summary>
    public bool Faulted => _stageTasks.Any(t => t.IsCompleted) && !_draining;

    private void NoteAbandoned(string reason) => LastAbandon = (reason, _time.GetUtcNow());

    /// <summary>Starts the three stages. The serving model must be loaded.</summary>
    public void Start()
    {
        _abort = new CancellationTokenSource();
        var ct = _abort.Token;
        var decode = Task.Run(() => DecodeStageAsync(ct), CancellationToken.None);
        // Inference runs on its own normal-priority threads: ONNX Runtime's caller thread is one of its workers.
        var workers = new Task[InferWorkers];
        var live = workers.Length;
        for (var w = 0; w < workers.Length; w++)
        {
            var worker = w;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            workers[w] = done.Task;
            InferenceThreads.Start(worker == 0 ? "stage" : $"stage-{worker}", () =>
            {
                try
                {
                    InferWorker(worker, ct);
                    done.SetResult();
                }
                catch (OperationCanceledException)
                {
                    done.SetCanceled(ct);
                }
                catch (Exception e)
                {
                    done.SetException(e);
                }
                finally
                {
                    if (Interlocked.Decrement(ref live) == 0)
                    {
                        _toPublish.Writer.TryComplete();
                    }
                }
            });
        }

        var infer = Task.WhenAll(workers);
        var publish = Task.Run(() => PublishStageAsync(ct), CancellationToken.None);
        _stageTasks = [decode, infer, publish];
        _stages = Task.WhenAll(decode, infer, publish);
        var nice = _options.Inference.OtherThreadsNice;
        if (nice > 0)
        {
            // Threads the runtime, MQTT or the broker start later are caught by the next sweep.
            _lowering = new Timer(_ => InferenceThreads.LowerOthers(nice), null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>Stops taking input and finishes everything already accepted. When <paramref name="cancellationToken"/>
    /// fires first, the stages are aborted and unfinished images are left to their sources (files stay for the next start).
    /// Returns true when fully drained.</summary>
    public async Task<bool> DrainAsync(CancellationToken cancellationToken)
    {
        _draining = true;
        _input.Writer.TryComplete();
        _lowering?.Dispose();
        if (_stages is null)
        {
            return true;
        }

        try
        {
            await _stages.WaitAsync(cancellationToken);
            return true;
        }
        catch (OperationCanceledException)
        {
            await _abort!.CancelAsync();
            await _stages.ContinueWith(_ => { }, TaskScheduler.Default);
            return false;
        }
    }

    /// <summary>Releases the stages' cancellation source and the priority sweep; call after <see cref="DrainAsync"/> (the host
    /// does, at the end).</summary>
    public void Dispose()
    {
        _lowering?.Dispose();
        _abort?.Dispose();
    }

    /// <summary>Images are read, decoded and preprocessed on up to <see cref="DecodeWorkers"/> at once (a 5-megapixel
    /// PNG takes tens of milliseconds) and handed on in arrival order.</summary>
    private async Task DecodeStageAsync(CancellationToken ct)
    {
        var hb = Heartbeats[0];
        // At most DecodeWorkers images are taken from the input and in work at once (a slot is taken before an image is
        // read, given back once it is handed on); the started ones wait here in arrival order.
        using var slots = new SemaphoreSlim(DecodeWorkers);
        var started = Channel.CreateUnbounded<Task<Item>>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var start = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    await slots.WaitAsync(ct);
                    if (!await _input.Reader.WaitToReadAsync(ct) || !_input.Reader.TryRead(out var work))
                    {
                        break;
                    }

                    started.Writer.TryWrite(Task.Run(() => PrepareAsync(work, ct).AsTask(), CancellationToken.None));
                }
            }
            finally
            {
                started.Writer.TryComplete();
            }
        }, CancellationToken.None);
        try
        {
            await foreach (var next in started.Reader.ReadAllAsync(ct))
            {
                hb.Busy();
                var item = await next;
                hb.Idle();
                await _toInfer.Writer.WriteAsync(item, ct);
                Interlocked.Increment(ref _decoded);
                slots.Release();
            }

            await start;
        }
        finally
        {
            _toInfer.Writer.TryComplete();
        }
    }

    /// <summary>Images decoded at once: one per core this process may use.</summary>
    private int DecodeWorkers => _options.Pipeline.DecodeWorkers > 0 ? _options.Pipeline.DecodeWorkers : Environment.ProcessorCount;

    /// <summary>Reads, hashes, checks the journal, decodes and preprocesses one image; failures become outcomes, never throws.</summary>
    private async ValueTask<Item> PrepareAsync(ImageWork work, CancellationToken ct)
    {
        var item = new Item(work);
        var t0 = Stopwatch.GetTimestamp();
        try
        {
            if (work.FilePath is { } path)
            {
                var info = new FileInfo(path);
                if (info.LinkTarget is not null)
                {
                    return item.Fail("symlink", "symbolic links are not followed out of the watched folder");
                }

                if (Directory.Exists(path))
                {
                    return item.Fail("not-a-file", "a directory named like an image; folder sources do not descend into sub-folders");
                }

                if (!info.Exists)
                {
                    return item.Fail("vanished", "the file was deleted or moved before it was read");
                }

                if (info.Length > _limits.MaxBytes)
                {
                    return item.Fail(DecodeFailure.TooLarge, $"file is {info.Length:N0} bytes, over the {_limits.MaxBytes:N0}-byte limit");
                }

                if (info.Length == 0)
                {
                    // Never open a zero-length entry: a named pipe is 0 bytes too, and opening it blocks until a writer
                    // appears, which would wedge the decode stage (and every image behind it) for good.
                    return item.Fail(DecodeFailure.Empty, "file is empty (0 bytes; pipes and devices are not opened)");
                }

                byte[] bytes;
                try
                {
                    bytes = await File.ReadAllBytesAsync(path, ct);
                }
                catch (FileNotFoundException)
                {
                    return item.Fail("vanished", "the file was deleted or moved before it was read");
                }
                catch (UnauthorizedAccessException e)
                {
                    return item.Fail("permission-denied", e.Message);
                }
                catch (IOException e)
                {
                    return item.Fail(DecodeFailure.Unreadable, e.Message);
                }

                item.Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes));
                item.Bytes = bytes.Length;
                item.FileKey = item.Sha256;
                string? original;
                try
                {
                    original = await _sink.FindCommittedAsync(work.SourceId, item.FileKey, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Without the journal we cannot tell a duplicate from a new image: keep the file and retry later.
                    NoteAbandoned("journal unavailable: " + e.Message);
                    item.EarlyOutcome = new WorkOutcome(WorkStatus.Abandoned, "journal unavailable: " + e.Message);
                    return item;
                }

                if (original is not null)
                {
                    item.EarlyOutcome = new WorkOutcome(work.SilentIfCommitted ? WorkStatus.Skipped : WorkStatus.Duplicate, "already published", original);
                    return item;
                }

                var input = _models.Current!.Classifier.Model.Manifest.Input;
                // Gray images stay one channel: the preprocessor makes the same tensor from it at a third of the resize.
                var decoded = ImageDecoder.Decode(bytes, _limits, _options.Pipeline.ReducedJpegDecode ? (input.Width, input.Height) : null, keepGray: true);
                (item.Pixels, item.Width, item.Height) = (decoded.Pixels, decoded.Width, decoded.Height);
            }
            else
            {
                using var frame = work.Frame ?? throw new InvalidOperationException("work item without file or frame");
                (item.Sha256, item.Bytes) = HashFrame(frame);
                item.FileKey = work.FrameKey ?? item.Sha256;
                item.Pixels = ImageDecoder.ToPixels(frame, keepGray: true);
                (item.Width, item.Height) = (item.Pixels.Width, item.Pixels.Height);
            }

            item.DecodeMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            Preprocess(item, _models.Current!);
            return item;
        }
        catch (ImageDecodeException e)
        {
            return item.Fail(e.Reason, e.Message);
        }
        catch (OpenCVException e)
        {
            return item.Fail(DecodeFailure.Undecodable, e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // One odd image must never stop the stage (a dead stage would look idle to the watchdog).
            return item.Fail("internal-error", $"{e.GetType().Name}: {e.Message}");
        }
    }

    private static (string Sha256, long Bytes) HashFrame(Mat frame)
    {
        if (!frame.IsContinuous())
        {
            using var c = frame.Clone();
            return HashFrame(c);
        }

        unsafe
        {
            var span = new ReadOnlySpan<byte>((void*)frame.Data, checked((int)(frame.Total() * frame.ElemSize())));
            return (Convert.ToHexStringLower(SHA256.HashData(span)), span.Length);
        }
    }

    private static void Preprocess(Item item, ModelSlot slot)
    {
        var t = Stopwatch.GetTimestamp();
        var len = slot.Classifier.TensorLength;
        if (item.Tensor is not null && item.Tensor.Length < len)
        {
            ArrayPool<float>.Shared.Return(item.Tensor);
            item.Tensor = null;
        }

        item.Tensor ??= ArrayPool<float>.Shared.Rent(len);
        slot.Classifier.Preprocess(item.Pixels!, item.Tensor.AsSpan(0, len));
        item.Generation = slot.Generation;
        item.PreprocessMs += Stopwatch.GetElapsedTime(t).TotalMilliseconds;
    }

    /// <summary>Inference workers started: <c>Inference:ConcurrentBatches</c>, or one per core the process may use; how
    /// many of them run a batch at once is the serving classifier's <see cref="IClassifier.ConcurrentBatches"/>.</summary>
    private int InferWorkers => _options.Inference.MostConcurrentBatches;

    /// <summary>One inference worker. Workers take turns to gather a batch (in arrival order, numbered by a ticket), run
    /// it at the same time as each other, and hand their items on in ticket order: a batch that finishes first waits
    /// for the one before it, so results keep the arrival order.</summary>
    private void InferWorker(int worker, CancellationToken ct)
    {
        var hb = Heartbeats[1];
        var max = _options.Inference.MaxBatch;
        var batch = new List<Item>(max);
        float[] buffer = [];
        while (TakeBatch(batch, max, ct) is var (slot, ticket))
        {
            hb.Busy(worker);
            try
            {
                Infer(batch, slot, ref buffer);
            }
            finally
            {
                HandOn(batch, ticket, ct);
                hb.Idle(worker);
            }
        }
    }

    /// <summary>Waits for work (swapping in a warmed model while idle), then for a free run slot, then gathers up to
    /// <paramref name="max"/> images; null once the input is finished. One worker at a time.</summary>
    private (ModelSlot Slot, long Ticket)? TakeBatch(List<Item> batch, int max, CancellationToken ct)
    {
        batch.Clear();
        var reader = _toInfer.Reader;
        lock (_batchTurn)
        {
            while (true)
            {
                // Wake for work, or for a warmed model waiting to be swapped in while idle.
                var wait = reader.WaitToReadAsync(ct).AsTask();
                Task.WaitAny([wait, _models.PendingSignal], ct);
                if (_models.PendingSignal.IsCompleted)
                {
                    SwapWhenIdle(ct);
                }

                if (!wait.IsCompleted)
                {
                    continue;
                }

                if (!wait.GetAwaiter().GetResult())
                {
                    return null;
                }

                break;
            }

            var slot = _models.Current!;
            lock (_order)
            {
                while (_running >= slot.Classifier.ConcurrentBatches)
                {
                    ct.ThrowIfCancellationRequested();
                    Monitor.Wait(_order, 100);
                }

                _running++;
            }

            Gather(batch, Math.Min(max, slot.Classifier.BatchLimit), ct);
            lock (_order)
            {
                return (slot, _nextTicket++);
            }
        }
    }

    private static readonly TimeSpan GatherSlice = TimeSpan.FromMilliseconds(5);

    /// <summary>Takes what is queued, and while the batch is short and more images are already being read or decoded,
    /// waits up to <c>Inference:BatchFillMs</c> for them: a full batch costs less per image than several small ones
    /// (on one core the decoders only get the CPU while inference waits). A lone image, with nothing behind it, goes at once.</summary>
    private void Gather(List<Item> batch, int max, CancellationToken ct)
    {
        var reader = _toInfer.Reader;
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.Inference.BatchFillMs * Stopwatch.Frequency / 1000.0);
        while (batch.Count < max)
        {
            if (reader.TryRead(out var item))
            {
                batch.Add(item);
                continue;
            }

            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (batch.Count == 0 || left <= TimeSpan.Zero || ImagesBeforeInference == 0)
            {
                return;
            }

            // Wait in short slices so the loop sees an image that failed to decode (nothing more will come).
            var more = reader.WaitToReadAsync(ct).AsTask();
            if (more.Wait(left < GatherSlice ? left : GatherSlice, ct) && !more.Result)
            {
                return; // the input is finished
            }
        }
    }

    /// <summary>Images accepted and not yet handed to inference (in the input queue or being decoded).</summary>
    private long ImagesBeforeInference => Interlocked.Read(ref _accepted) - Interlocked.Read(ref _decoded);

    private void Infer(List<Item> batch, ModelSlot slot, ref float[] buffer)
    {
        var runnable = batch.Where(i => i.EarlyOutcome is null).ToList();
        if (runnable.Count == 0)
        {
            return;
        }

        var len = slot.Classifier.TensorLength;
        if (buffer.Length < runnable.Count * len)
        {
            buffer = new float[_options.Inference.MaxBatch * len];
        }

        try
        {
            for (var i = 0; i < runnable.Count; i++)
            {
                if (runnable[i].Generation != slot.Generation)
                {
                    Preprocess(runnable[i], slot); // made for the model that was swapped out
                }

                runnable[i].Tensor.AsSpan(0, len).CopyTo(buffer.AsSpan(i * len, len));
            }

            var t = Stopwatch.GetTimestamp();
            var predictions = slot.Classifier.Classify(buffer, runnable.Count);
            var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _batchedImages, runnable.Count);
            InferenceBatched?.Invoke(runnable.Count);
            for (var i = 0; i < runnable.Count; i++)
            {
                runnable[i].Prediction = predictions[i];
                runnable[i].InferMs = ms;
                runnable[i].Model = slot.Classifier;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Every image of the batch is set aside with the reason; the worker goes on with the next batch.
            Log.InferenceFailed(_log, runnable.Count, e.Message);
            foreach (var item in runnable)
            {
                item.Fail("inference-error", e.Message);
            }
        }
    }

    /// <summary>Hands a finished batch to the publish stage once every earlier batch has been handed on, and frees its
    /// run slot. Waits at most one batch's inference (checking for an abort every 100 ms).</summary>
    private void HandOn(List<Item> batch, long ticket, CancellationToken ct)
    {
        try
        {
            lock (_order)
            {
                while (_nextToHandOn != ticket)
                {
                    ct.ThrowIfCancellationRequested();
                    Monitor.Wait(_order, 100);
                }
            }

            foreach (var item in batch)
            {
                item.ReleaseImage();
                if (!_toPublish.Writer.TryWrite(item))
                {
                    _toPublish.Writer.WriteAsync(item, ct).AsTask().GetAwaiter().GetResult();
                }
            }
        }
        finally
        {
            lock (_order)
            {
                if (_nextToHandOn == ticket)
                {
                    _nextToHandOn++;
                }

                _running--;
                Monitor.PulseAll(_order);
            }
        }
    }

    /// <summary>Swaps in a warmed model once no batch runs, so the retired classifier is disposed with nothing using it.</summary>
    private void SwapWhenIdle(CancellationToken ct)
    {
        lock (_order)
        {
            while (_running > 0)
            {
                ct.ThrowIfCancellationRequested();
                Monitor.Wait(_order, 100);
            }
        }

        if (_models.TryTakePending(out var retired) is not null)
        {
            retired?.Classifier.Dispose();
        }
    }

    // Results already waiting together are committed together: one durable write (fsync) for all of them instead of
    // one per image, which capped a small model at ~190 images/s on a disk with 4 ms fsyncs. Nothing waits to fill a
    // batch: a lone image is committed alone, at once.
    private const int MaxCommitBatch = 64;

    private async Task PublishStageAsync(CancellationToken ct)
    {
        var hb = Heartbeats[2];
        var reader = _toPublish.Reader;
        var ready = new List<Item>(MaxCommitBatch);
        while (await reader.WaitToReadAsync(ct))
        {
            hb.Busy();
            ready.Clear();
            while (ready.Count < MaxCommitBatch && reader.TryRead(out var next))
            {
                ready.Add(next);
            }

            var outcomes = await FinishAsync(ready, ct);
            for (var i = 0; i < ready.Count; i++)
            {
                var item = ready[i];
                var outcome = outcomes[i];
                await item.Work.Completion.CompleteAsync(item.Work, outcome, ct);
                switch (outcome.Status)
                {
                    case WorkStatus.Published:
                        Interlocked.Increment(ref _published);
                        break;
                    case WorkStatus.Failed:
                        Interlocked.Increment(ref _failed);
                        break;
                    case WorkStatus.Duplicate:
                        Interlocked.Increment(ref _duplicates);
                        break;
                    case WorkStatus.Skipped:
                        Interlocked.Increment(ref _skipped);
                        break;
                    default:
                        Interlocked.Increment(ref _abandoned);
                        break;
                }

                Finished?.Invoke(item.Work, outcome);
            }

            hb.Idle();
        }
    }

    /// <summary>Outcomes for a run of items in order: the classified ones are committed in one batch first, then each
    /// item is reported (events, logs, latency) in its order.</summary>
    private async ValueTask<WorkOutcome[]> FinishAsync(List<Item> items, CancellationToken ct)
    {
        var toCommit = new List<ImageResult>(items.Count);
        foreach (var item in items)
        {
            if (item.EarlyOutcome is null)
            {
                toCommit.Add(BuildResult(item));
            }
        }

        var batch = toCommit.Count == 0 ? null : await _sink.CommitResultsAsync(toCommit, ct);
        if (batch is { Stored.Count: > 0 })
        {
            CommitBatched?.Invoke(batch.Stored.Count);
        }
        var outcomes = new WorkOutcome[items.Count];
        var k = 0;
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].EarlyOutcome is { } early)
            {
                outcomes[i] = await FinishEarlyAsync(items[i], early, ct);
                continue;
            }

            outcomes[i] = k < batch!.Stored.Count
                ? await AfterCommitAsync(items[i], toCommit[k], batch.Stored[k], ct)
                : await CommitFailedAsync(items[i], batch.Failure ?? new InvalidOperationException("the sink stored fewer results than it was given"), ct);
            k++;
        }

        return outcomes;
    }

    private async ValueTask<WorkOutcome> FinishEarlyAsync(Item item, WorkOutcome early, CancellationToken ct)
    {
        var w = item.Work;
        switch (early.Status)
        {
            case WorkStatus.Failed:
                _failedByReason.AddOrUpdate(early.Reason!, 1, (_, n) => n + 1);
                Log.BadImage(_log, w.SourceId, w.ImageId, early.Reason!, item.FailDetail ?? "");
                await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.BadImage, EventSeverity.Warning,
                    $"{w.ImageId} set aside: {early.Reason}: {item.FailDetail}", _time.GetUtcNow(), w.SourceId, w.FilePath ?? w.ImageId, early.Reason)
                {
                    Data = item.Sha256 is null ? null : new Dictionary<string, string> { ["sha256"] = item.Sha256 },
                }, ct);
                return new WorkOutcome(WorkStatus.Failed, $"{early.Reason}: {item.FailDetail}");
            case WorkStatus.Duplicate:
                return await ReportDuplicateAsync(item, early.MessageId, ct);
            default:
                return early; // leave mode: already published before a restart, silently skipped
        }
    }

    private ImageResult BuildResult(Item item)
    {
        var w = item.Work;
        return new ImageResult
        {
            Node = _node,
            SourceId = w.SourceId,
            ImageId = w.ImageId,
            ImagePath = w.FilePath ?? w.ImageId,
            Sha256 = item.Sha256!,
            ImageBytes = item.Bytes,
            FileKey = item.FileKey!,
            CapturedUtc = w.CapturedUtc,
            Camera = w.Camera,
            ClassifiedUtc = _time.GetUtcNow(),
            ModelId = item.Model!.Model.Manifest.Model.Id,
            ModelVersion = string.IsNullOrEmpty(item.Model.Model.Manifest.Model.Version) ? null : item.Model.Model.Manifest.Model.Version,
            ModelSha256 = item.Model.Model.Sha256,
            ExecutionProvider = item.Model.ExecutionProvider,
            Width = item.Width,
            Height = item.Height,
            Prediction = item.Prediction!,
            Latency = new StageLatency(item.DecodeMs, item.PreprocessMs, item.InferMs, Stopwatch.GetElapsedTime(w.ArrivalTimestamp).TotalMilliseconds),
        };
    }

    private async ValueTask<WorkOutcome> CommitFailedAsync(Item item, Exception e, CancellationToken ct)
    {
        // Not durably stored: the file must stay where it is and be retried, never reported lost.
        var w = item.Work;
        Log.CommitFailed(_log, w.SourceId, w.ImageId, e.Message);
        var first = LastAbandon is null;
        NoteAbandoned("results cannot be stored: " + e.Message);
        if (first)
        {
            // Once per episode: the floor learns why results stopped (the sink sends it directly when its own store
            // is what failed).
            await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.StoreFailed, EventSeverity.Error,
                $"results cannot be stored: {e.Message}; files are kept and retried", _time.GetUtcNow(), w.SourceId, w.FilePath ?? w.ImageId, e.Message), ct);
        }

        return new WorkOutcome(WorkStatus.Abandoned, "commit failed: " + e.Message);
    }

    private async ValueTask<WorkOutcome> AfterCommitAsync(Item item, ImageResult result, CommitResult commit, CancellationToken ct)
    {
        // Stored again: the episode is over, status need not stay degraded for the rest of the minute.
        LastAbandon = null;

        if (commit.Outcome == CommitOutcome.Duplicate)
        {
            return await ReportDuplicateAsync(item, commit.MessageId, ct);
        }

        var w = item.Work;
        var p = result.Prediction;
        DecodeLatency.Record(item.DecodeMs);
        PreprocessLatency.Record(item.PreprocessMs);
        InferLatency.Record(item.InferMs);
        TotalLatency.Record(result.Latency.Total);
        Log.Classified(_log, w.SourceId, w.ImageId, p.Path[^1].Label, p.Path[^1].Confidence, result.Latency.Total);
        return new WorkOutcome(WorkStatus.Published, MessageId: commit.MessageId);
    }

    private async ValueTask<WorkOutcome> ReportDuplicateAsync(Item item, string? original, CancellationToken ct)
    {
        var w = item.Work;
        Log.Duplicate(_log, w.SourceId, w.ImageId, original ?? "(journal)");
        await Events.EmitAsync(_sink, _log, new DaemonEvent(EventKinds.Duplicate, EventSeverity.Info,
            $"{w.ImageId} has the same content as an image already published; not reported again", _time.GetUtcNow(), w.SourceId,
            w.FilePath ?? w.ImageId, "duplicate")
        {
            Data = new Dictionary<string, string> { ["sha256"] = item.Sha256 ?? "", ["original_message_id"] = original ?? "" },
        }, ct);
        return new WorkOutcome(WorkStatus.Duplicate, "duplicate", original);
    }

    /// <summary>One image on its way through the stages; touched by one stage at a time.</summary>
    private sealed class Item(ImageWork work)
    {
        public ImageWork Work { get; } = work;
        /// <summary>The decoded image (8-bit RGB, or gray), kept until inference in case a swap needs another tensor.</summary>
        public Mat? Pixels { get; set; }
        public float[]? Tensor { get; set; }
        public long Generation { get; set; }
        public string? Sha256 { get; set; }
        public long Bytes { get; set; }
        public string? FileKey { get; set; }
        public int Width { get; set; }
        public int Height { get; set; }
        public double DecodeMs { get; set; }
        public double PreprocessMs { get; set; }
        public double InferMs { get; set; }
        public HierarchicalPrediction? Prediction { get; set; }
        public IClassifier? Model { get; set; }
        public WorkOutcome? EarlyOutcome { get; set; }
        public string? FailDetail { get; set; }

        public Item Fail(string reason, string detail)
        {
            EarlyOutcome = new WorkOutcome(WorkStatus.Failed, reason);
            FailDetail = detail;
            ReleaseImage();
            return this;
        }

        public void ReleaseImage()
        {
            Pixels?.Dispose();
            Pixels = null;
            if (Tensor is not null)
            {
                ArrayPool<float>.Shared.Return(Tensor);
                Tensor = null;
            }
        }
    }
}

/// <summary>The identity of this daemon run: a fresh UUID v7 (32 hex digits, as every id in docs/mqtt.md) at every
/// start. Immutable.</summary>
public sealed class DaemonSession
{
    public DaemonSession(TimeProvider? time = null)
    {
        StartedUtc = (time ?? TimeProvider.System).GetUtcNow();
        Id = FmaEdge.Messaging.Contract.MessageIdGenerator.NewId(StartedUtc);
    }

    public DateTimeOffset StartedUtc { get; }

    public string Id { get; }
}
