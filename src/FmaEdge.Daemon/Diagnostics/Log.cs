using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Diagnostics;

/// <summary>Every log line the daemon writes, with stable event ids (1xxx host, 2xxx sources, 3xxx pipeline,
/// 4xxx models, 5xxx status/output). Ids never change meaning; journal queries and alerts may rely on them.</summary>
public static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "fma-edge {Version} starting: node {Node}, session {Session}")]
    public static partial void Starting(ILogger log, string version, string node, string session);

    [LoggerMessage(1001, LogLevel.Information, "Ready: model {ModelId} ({Hash}) on {Provider}, {Sources} source(s) open")]
    public static partial void Ready(ILogger log, string modelId, string hash, string provider, int sources);

    [LoggerMessage(1002, LogLevel.Information, "Stopping: draining the pipeline ({InFlight} image(s) in flight)")]
    public static partial void Draining(ILogger log, long inFlight);

    [LoggerMessage(1003, LogLevel.Information, "Stopped cleanly: {Processed} processed, {Failed} failed this session")]
    public static partial void Stopped(ILogger log, long processed, long failed);

    [LoggerMessage(1004, LogLevel.Critical, "Pipeline stage {Stage} busy for {Seconds:F0} s: watchdog pings withheld")]
    public static partial void Wedged(ILogger log, string stage, double seconds);

    [LoggerMessage(1005, LogLevel.Warning, "Free space on {Path} is {FreeMiB} MiB, below the floor of {FloorMiB} MiB")]
    public static partial void DiskLow(ILogger log, string path, long freeMiB, long floorMiB);

    [LoggerMessage(1006, LogLevel.Warning, "Drain did not finish in time: {Left} image(s) left for the next start")]
    public static partial void DrainTimeout(ILogger log, long left);

    [LoggerMessage(1007, LogLevel.Critical, "Start-up failed: {Reason}")]
    public static partial void StartFailed(ILogger log, string reason);

    [LoggerMessage(1008, LogLevel.Information, "Native memory: {Settings}")]
    public static partial void NativeMemorySettings(ILogger log, string settings);

    [LoggerMessage(2000, LogLevel.Information, "Source {Source} ({Type}) open: {Where}")]
    public static partial void SourceStarted(ILogger log, string source, string type, string where);

    [LoggerMessage(2001, LogLevel.Warning, "Source {Source}: folder watcher problem, relying on rescans: {Reason}")]
    public static partial void WatcherError(ILogger log, string source, string reason);

    [LoggerMessage(2002, LogLevel.Error, "Source {Source}: cannot move {Path} out of the folder (left in place, retried at every rescan): {Reason}")]
    public static partial void MoveFailed(ILogger log, string source, string path, string reason);

    [LoggerMessage(2007, LogLevel.Information, "Source {Source}: files move out of the folder again ({Dir})")]
    public static partial void MoveRecovered(ILogger log, string source, string dir);

    [LoggerMessage(2003, LogLevel.Warning, "Camera {Source} down: {Reason}; retrying in {DelayMs} ms")]
    public static partial void CameraDown(ILogger log, string source, string reason, int delayMs);

    [LoggerMessage(2004, LogLevel.Information, "Camera {Source} up: {Uri} {Width}x{Height}")]
    public static partial void CameraUp(ILogger log, string source, string uri, int width, int height);

    [LoggerMessage(2005, LogLevel.Warning, "Camera {Source} stalled: no frame for {Seconds:F0} s, reopening")]
    public static partial void CameraStalled(ILogger log, string source, double seconds);

    [LoggerMessage(2006, LogLevel.Warning, "Camera {Source} dropped {Dropped} frame(s) under overload (total {Total})")]
    public static partial void FramesDropped(ILogger log, string source, long dropped, long total);

    [LoggerMessage(2008, LogLevel.Warning, "Camera {Source}: capture {Stage} blocked for {Seconds:F0} s, attempt abandoned with its thread ({Stuck} stuck)")]
    public static partial void CaptureAbandoned(ILogger log, string source, string stage, double seconds, int stuck);

    [LoggerMessage(2009, LogLevel.Information, "Camera {Source}: an abandoned capture returned {Seconds:F0} s after it was given up ({Stuck} still stuck)")]
    public static partial void AbandonedCaptureReturned(ILogger log, string source, double seconds, int stuck);

    [LoggerMessage(2010, LogLevel.Warning, "Camera {Source}: feature not applied: {Problem}")]
    public static partial void CameraFeatureProblem(ILogger log, string source, string problem);

    [LoggerMessage(3000, LogLevel.Warning, "Bad image {Source}/{Image} set aside: {Reason} ({Detail})")]
    public static partial void BadImage(ILogger log, string source, string image, string reason, string detail);

    [LoggerMessage(3001, LogLevel.Information, "Duplicate {Source}/{Image}: same content as result {Original}")]
    public static partial void Duplicate(ILogger log, string source, string image, string original);

    [LoggerMessage(3002, LogLevel.Error, "Inference failed for a batch of {Count}: {Reason}")]
    public static partial void InferenceFailed(ILogger log, int count, string reason);

    [LoggerMessage(3003, LogLevel.Error, "Cannot commit result for {Source}/{Image}; the file stays for a retry: {Reason}")]
    public static partial void CommitFailed(ILogger log, string source, string image, string reason);

    [LoggerMessage(3004, LogLevel.Debug, "{Source}/{Image}: {Label} ({Confidence:P1}) in {TotalMs:F1} ms")]
    public static partial void Classified(ILogger log, string source, string image, string label, float confidence, double totalMs);

    [LoggerMessage(4000, LogLevel.Information, "Serving model {ModelId} ({Hash}) on {Provider} from {Path}")]
    public static partial void ModelActive(ILogger log, string modelId, string hash, string provider, string path);

    [LoggerMessage(4001, LogLevel.Information, "Model swapped: now {ModelId} ({Hash}), was {Previous}")]
    public static partial void ModelSwapped(ILogger log, string modelId, string hash, string previous);

    [LoggerMessage(4002, LogLevel.Warning, "Model file {Path} refused, serving model unchanged: {Reasons}")]
    public static partial void ModelRejected(ILogger log, string path, string reasons);

    [LoggerMessage(4003, LogLevel.Warning, "Model {Path}: execution provider fallback: {Note}")]
    public static partial void ProviderFallback(ILogger log, string path, string note);

    [LoggerMessage(4004, LogLevel.Information, "Model file {Path} ({Hash}) is already serving or pending; ignored")]
    public static partial void ModelUnchanged(ILogger log, string path, string hash);

    [LoggerMessage(4005, LogLevel.Warning, "Models folder watch problem: {Reason}")]
    public static partial void ModelWatchError(ILogger log, string reason);

    [LoggerMessage(4006, LogLevel.Information, "Model {Path} on the CPU provider: one intra-op thread per batch, up to {ConcurrentBatches} batches at once (Inference:IntraOpThreads 0)")]
    public static partial void OneThreadPerBatch(ILogger log, string path, int concurrentBatches);

    [LoggerMessage(4007, LogLevel.Information, "Model {Path} runs batches of up to {Batch} (of Inference:MaxBatch {MaxBatch}); timed at load, ms per image by batch size: {Timings} (Inference:TimeBatches)")]
    public static partial void BatchesTimed(ILogger log, string path, int batch, int maxBatch, string timings);

    [LoggerMessage(5000, LogLevel.Information, "Status socket listening on {Path}")]
    public static partial void StatusListening(ILogger log, string path);

    [LoggerMessage(5001, LogLevel.Warning, "Status request failed: {Reason}")]
    public static partial void StatusRequestFailed(ILogger log, string reason);

    [LoggerMessage(5002, LogLevel.Error, "Output sink problem ({What}): {Reason}")]
    public static partial void SinkError(ILogger log, string what, string reason);

    [LoggerMessage(5003, LogLevel.Information, "Metrics served at {Url}")]
    public static partial void MetricsServing(ILogger log, string url);

    [LoggerMessage(5004, LogLevel.Warning, "Metrics scrape failed: {Reason}")]
    public static partial void MetricsScrapeFailed(ILogger log, string reason);
}
