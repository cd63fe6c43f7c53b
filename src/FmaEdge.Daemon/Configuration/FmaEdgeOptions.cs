namespace FmaEdge.Daemon.Configuration;

/// <summary>Every setting of the daemon, bound from configuration section "FmaEdge". Defaults live in the shipped
/// fma-edge.json; docs/configuration.md documents each key. Mutable only while binding; treat as immutable after
/// <see cref="FmaEdgeOptionsValidator"/> accepted it.</summary>
public sealed class FmaEdgeOptions
{
    /// <summary>Configuration section holding these options.</summary>
    public const string Section = "FmaEdge";

    /// <summary>Node name used in results, topics and status; empty means the host name.</summary>
    public string NodeName { get; set; } = "";

    public PathOptions Paths { get; set; } = new();
    public InferenceSettings Inference { get; set; } = new();
    public ModelOptions Models { get; set; } = new();
    public List<SourceOptions> Sources { get; set; } = [];
    public PipelineOptions Pipeline { get; set; } = new();
    public OutputOptions Output { get; set; } = new();

    /// <summary>MQTT broker, topics, TLS, the embedded broker and the durable outbox (docs/mqtt.md); used when
    /// Output:Type is "mqtt". Empty NodeName: the daemon's node name; relative OutboxPath: under StateDir.</summary>
    public FmaEdge.Messaging.MqttOptions Mqtt { get; set; } = new();
    public StatusOptions Status { get; set; } = new();
    public HealthOptions Health { get; set; } = new();
    public MetricsOptions Metrics { get; set; } = new();
    public LoggingSettings Logging { get; set; } = new();

    /// <summary>The node name to report: <see cref="NodeName"/> or the machine's host name.</summary>
    public string EffectiveNodeName => string.IsNullOrWhiteSpace(NodeName) ? Environment.MachineName : NodeName;
}

/// <summary>Where the daemon keeps state. Empty values take systemd's $STATE_DIRECTORY / $RUNTIME_DIRECTORY.</summary>
public sealed class PathOptions
{
    /// <summary>Persistent state (journal, outbox, TensorRT caches). Empty: $STATE_DIRECTORY, else /var/lib/fma-edge.</summary>
    public string StateDir { get; set; } = "";

    /// <summary>Folder watched for .onnx models. Empty: &lt;StateDir&gt;/models.</summary>
    public string ModelsDir { get; set; } = "";

    /// <summary>Volatile runtime files (the status socket). Empty: $RUNTIME_DIRECTORY, else /run/fma-edge.</summary>
    public string RuntimeDir { get; set; } = "";

    public string ResolvedStateDir => Resolve(StateDir, "STATE_DIRECTORY", "/var/lib/fma-edge");
    public string ResolvedRuntimeDir => Resolve(RuntimeDir, "RUNTIME_DIRECTORY", "/run/fma-edge");
    public string ResolvedModelsDir => string.IsNullOrWhiteSpace(ModelsDir) ? Path.Combine(ResolvedStateDir, "models") : Path.GetFullPath(ModelsDir);

    private static string Resolve(string configured, string env, string fallback)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Path.GetFullPath(configured);
        }

        // systemd may pass several colon-separated directories; the first is ours.
        var fromEnv = Environment.GetEnvironmentVariable(env);
        return string.IsNullOrWhiteSpace(fromEnv) ? fallback : fromEnv.Split(':')[0];
    }
}

/// <summary>ONNX Runtime session settings: execution providers in order of preference and their tuning.</summary>
public sealed class InferenceSettings
{
    /// <summary>Providers tried in order, comma-separated; each falls back to the next with the reason logged:
    /// tensorrt, cuda, cpu. A string rather than a list so one override file or variable replaces it whole.</summary>
    public string Providers { get; set; } = "tensorrt,cuda,cpu";

    /// <summary><see cref="Providers"/> split and trimmed.</summary>
    public IReadOnlyList<string> ProviderList => Split(Providers);

    internal static List<string> Split(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    public TensorRtSettings TensorRt { get; set; } = new();

    /// <summary>CUDA device id for the CUDA and TensorRT providers.</summary>
    public int CudaDevice { get; set; }

    /// <summary>Cap on the CUDA provider's memory arena in MiB (0 = no cap; memory is shared on Jetson).</summary>
    public int CudaMemoryLimitMiB { get; set; }

    /// <summary>Intra-op threads (0 = one per core this process may use: CPU affinity and cgroup limits count).</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>Nice value (1..19) the daemon's other threads (decoding, commits, MQTT, the embedded broker) are lowered to,
    /// so they run in the gaps of ONNX Runtime's workers instead of pre-empting them; 0 leaves every thread as it is.</summary>
    public int OtherThreadsNice { get; set; } = 10;

    /// <summary>Inter-op threads (0 = default).</summary>
    public int InterOpThreads { get; set; }

    /// <summary>Largest batch of queued images run together.</summary>
    public int MaxBatch { get; set; } = 8;

    /// <summary>On the CPU provider, time batch sizes 1, 2, 4, ... MaxBatch at load and serve with the largest that is
    /// within 5 % of the fastest per image (<see cref="Models.BatchSizeProbe"/>); false: every model runs up to MaxBatch.</summary>
    public bool TimeBatches { get; set; } = true;

    /// <summary>Batches run at once on the serving model (0 = on the CPU provider, the cores this process may use divided
    /// by the model's intra-op threads, so a one-thread model keeps every core busy; 1 on TensorRT and CUDA).</summary>
    public int ConcurrentBatches { get; set; }

    /// <summary>The most batches that can ever run at once: <see cref="ConcurrentBatches"/>, or for 0 one per core this
    /// process may use (a one-thread CPU session's share). The pipeline starts this many inference workers; the model
    /// in service may use fewer.</summary>
    public int MostConcurrentBatches => ConcurrentBatches > 0 ? ConcurrentBatches : Math.Max(1, Environment.ProcessorCount);

    /// <summary>How long (ms) a batch that is not full may wait for images already being decoded (0 = never wait); under a
    /// backlog this trades a few milliseconds of latency for full batches.</summary>
    public int BatchFillMs { get; set; } = 20;

    /// <summary>Warm-up runs at the largest batch before a model serves (and before a swap).</summary>
    public int WarmUpRuns { get; set; } = 2;
}

/// <summary>TensorRT execution provider tuning (ignored when TensorRT is not used).</summary>
public sealed class TensorRtSettings
{
    public bool Fp16 { get; set; } = true;

    /// <summary>Keep LayerNorm in fp32 under fp16 (LayerNorm loses accuracy in fp16 on Orin).</summary>
    public bool LayerNormFp32Fallback { get; set; } = true;

    /// <summary>Engine + timing cache root; a sub-folder per model hash. Empty: &lt;StateDir&gt;/trt-cache.</summary>
    public string CacheDir { get; set; } = "";

    /// <summary>Workspace cap in MiB (memory is shared with the CPU on Jetson).</summary>
    public int WorkspaceMiB { get; set; } = 1024;

    /// <summary>Keep built engines under <see cref="CacheDir"/> (a restart loads instead of rebuilding for minutes).</summary>
    public bool EngineCache { get; set; } = true;

    /// <summary>Keep layer timings under <see cref="CacheDir"/> (speeds up a rebuild).</summary>
    public bool TimingCache { get; set; } = true;

    /// <summary>The batch size the engine is tuned for; the profile spans 1..MaxBatch.</summary>
    public int OptBatch { get; set; } = 1;

    /// <summary>TensorRT builder optimisation level 0..5.</summary>
    public int BuilderOptimizationLevel { get; set; } = 3;

    /// <summary>Orin deep-learning accelerator core (0 or 1), or -1 for the GPU only.</summary>
    public int DlaCore { get; set; } = -1;
}

/// <summary>Which model serves and how dropped model files are taken.</summary>
public sealed class ModelOptions
{
    /// <summary>A model file to serve at start; empty means the newest valid .onnx in the models folder.</summary>
    public string Active { get; set; } = "";

    /// <summary>Watch the models folder and hot-swap new or replaced files.</summary>
    public bool Watch { get; set; } = true;

    /// <summary>A dropped file is taken once its size and time stamp stayed unchanged this long.</summary>
    public int StableMs { get; set; } = 1000;
}

/// <summary>One image source. <see cref="Type"/> selects which of the other keys apply.</summary>
public sealed class SourceOptions
{
    public string Id { get; set; } = "";

    /// <summary>"folder" or "camera".</summary>
    public string Type { get; set; } = "folder";

    public bool Enabled { get; set; } = true;

    // ---- folder
    /// <summary>Folder watched for images.</summary>
    public string Path { get; set; } = "";

    /// <summary>File extensions taken, comma-separated, case-insensitive; other files are ignored.</summary>
    public string Extensions { get; set; } = ".png,.jpg,.jpeg,.bmp,.tif,.tiff,.webp";

    /// <summary><see cref="Extensions"/> split and trimmed.</summary>
    public IReadOnlyList<string> ExtensionList => InferenceSettings.Split(Extensions);

    /// <summary>"stable": wait until size and time stamp stay unchanged for <see cref="StableMs"/>;
    /// "rename": writers rename complete files in, so any file seen is complete.</summary>
    public FolderCompletion Completion { get; set; } = FolderCompletion.Stable;

    public int StableMs { get; set; } = 500;

    /// <summary>After processing: "move" to done/ or failed/ (with a .reason.txt), or "leave" (the journal prevents reprocessing).</summary>
    public FolderAfter After { get; set; } = FolderAfter.Move;

    /// <summary>Where processed files go in move mode. Empty: &lt;Path&gt;/done and &lt;Path&gt;/failed.</summary>
    public string DoneDir { get; set; } = "";

    public string FailedDir { get; set; } = "";

    /// <summary>Periodic rescan, a safety net for missed watcher events.</summary>
    public int RescanSeconds { get; set; } = 10;

    // ---- camera
    /// <summary>What to open: a device index ("0"), a device path (/dev/video0), a network URL (rtsp://, http://, udp://,
    /// rtmp://, ...), a file, or a GStreamer pipeline.</summary>
    public string Uri { get; set; } = "";

    /// <summary>Camera backend: "auto" (network URLs through ffmpeg, the rest through OpenCV), "opencv" (VideoCapture),
    /// "ffmpeg" (an ffmpeg subprocess decoding to a pipe), "aravis" (a GenICam camera; <see cref="Uri"/> is its device id,
    /// serial number or address, empty for the first one found).</summary>
    public string Backend { get; set; } = "auto";

    /// <summary>The ffmpeg executable for the ffmpeg backend (a name on PATH or a full path).</summary>
    public string FfmpegPath { get; set; } = "ffmpeg";

    /// <summary>Extra ffmpeg input options, space-separated, placed before -i (e.g. "-rtsp_transport udp"). RTSP uses TCP
    /// unless this sets -rtsp_transport.</summary>
    public string FfmpegInputArgs { get; set; } = "";

    /// <summary>"continuous" (every frame up to <see cref="FpsLimit"/>), "interval" (one frame every <see cref="IntervalMs"/>),
    /// or "trigger" (the latest frame when triggered by touching <see cref="TriggerFile"/> or via the status socket).</summary>
    public CameraSampling Sampling { get; set; } = CameraSampling.Continuous;

    /// <summary>Frames per second passed on at most (0 = no limit).</summary>
    public double FpsLimit { get; set; } = 5;

    public int IntervalMs { get; set; } = 1000;

    /// <summary>Touching this file triggers one frame in trigger mode (empty: socket only).</summary>
    public string TriggerFile { get; set; } = "";

    /// <summary>No frame for this long counts as a stall: the camera is reopened (a read still blocked then is abandoned).</summary>
    public int StallSeconds { get; set; } = 20;

    /// <summary>An open that has not returned after this long is abandoned and tried again.</summary>
    public int OpenTimeoutSeconds { get; set; } = 20;

    /// <summary>Abandoned captures whose thread is still blocked, at most; then the source waits for one to return.</summary>
    public int MaxStuckCaptures { get; set; } = 2;

    public int ReconnectMinMs { get; set; } = 500;
    public int ReconnectMaxMs { get; set; } = 30000;

    /// <summary>Frames waiting per camera; on overload the oldest is dropped and counted.</summary>
    public int QueueCapacity { get; set; } = 4;

    /// <summary>GenICam settings for the "aravis" backend (ignored by the others).</summary>
    public GenICamOptions GenICam { get; set; } = new();
}

/// <summary>GenICam (GigE Vision, USB3 Vision) camera settings, applied at every (re)connect in this order: pixel format,
/// region, exposure, gain, frame rate, packet size, <see cref="Features"/>, then the trigger. Empty/null leaves the
/// camera's own value.</summary>
public sealed class GenICamOptions
{
    public const string FreeRunning = "free";
    public const string Software = "software";
    public const string Hardware = "hardware";

    /// <summary>PixelFormat: Mono8, Mono12, Mono16, BayerRG8/BG8/GR8/GB8, RGB8, BGR8; empty keeps the camera's.</summary>
    public string PixelFormat { get; set; } = "";

    /// <summary>"x,y,width,height" in pixels; empty keeps the camera's region.</summary>
    public string Region { get; set; } = "";

    /// <summary>Exposure time in microseconds.</summary>
    public double? ExposureUs { get; set; }

    /// <summary>Gain in the camera's unit (usually dB).</summary>
    public double? Gain { get; set; }

    /// <summary>Acquisition frame rate (free-running).</summary>
    public double? FrameRate { get; set; }

    /// <summary>GigE Vision stream packet size in bytes (GevSCPSPacketSize); needs a matching MTU (docs/operations.md).</summary>
    public int? PacketSize { get; set; }

    /// <summary>Any other GenICam feature as "Name=Value", applied in list order after the settings above.</summary>
    public List<string> Features { get; set; } = [];

    /// <summary>"free" (free-running), "software" (one frame per trigger from the status socket or MQTT) or "hardware"
    /// (TriggerMode On with <see cref="TriggerSource"/> and <see cref="TriggerActivation"/>).</summary>
    public string Trigger { get; set; } = FreeRunning;

    /// <summary>Hardware trigger input (TriggerSource), e.g. Line0, Line1.</summary>
    public string TriggerSource { get; set; } = "Line1";

    /// <summary>TriggerActivation for hardware triggers (RisingEdge, FallingEdge, ...); empty keeps the camera's.</summary>
    public string TriggerActivation { get; set; } = "RisingEdge";

    /// <summary><see cref="Region"/> as x, y, width, height.</summary>
    public static int[] ParseRegion(string region) =>
        region.Split(',', StringSplitOptions.TrimEntries).Select(v => int.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}

/// <summary>Bounded queues between the pipeline stages.</summary>
public sealed class PipelineOptions
{
    /// <summary>Images waiting to be decoded (sources block when full: files wait, never drop).</summary>
    public int InputCapacity { get; set; } = 32;

    /// <summary>Preprocessed tensors waiting for inference.</summary>
    public int InferCapacity { get; set; } = 16;

    /// <summary>Results waiting to be published.</summary>
    public int PublishCapacity { get; set; } = 64;

    /// <summary>A stage busy with one item longer than this counts as wedged: watchdog pings stop.</summary>
    public int StallSeconds { get; set; } = 60;

    /// <summary>Images larger than this many bytes are rejected as "too-large" before decoding.</summary>
    public long MaxImageBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Decode a JPEG much larger than the model input at 1/2, 1/4 or 1/8 of its size (libjpeg DCT scaling),
    /// keeping at least twice the model input per side (docs/performance.md has the measured effect on the answers).</summary>
    public bool ReducedJpegDecode { get; set; } = true;

    /// <summary>Images read, decoded and preprocessed at once (handed on in arrival order); 0 = one per core the process
    /// may use.</summary>
    public int DecodeWorkers { get; set; }
}

/// <summary>Where results go. "folder" writes JSON files (tests, offline use); "mqtt" expects the messaging
/// module to register its <c>IResultSink</c>.</summary>
public sealed class OutputOptions
{
    public OutputType Type { get; set; } = OutputType.Mqtt;

    /// <summary>Folder for the "folder" type. Empty: &lt;StateDir&gt;/results.</summary>
    public string Path { get; set; } = "";
}

/// <summary>The local status socket.</summary>
public sealed class StatusOptions
{
    /// <summary>Unix socket path. Empty: &lt;RuntimeDir&gt;/status.sock.</summary>
    public string Socket { get; set; } = "";

    /// <summary>How often STATUS= is sent to systemd and disk space is checked.</summary>
    public int IntervalSeconds { get; set; } = 5;

    /// <summary>How often statistics are published (MQTT .../stats).</summary>
    public int StatsSeconds { get; set; } = 60;
}

/// <summary>Health thresholds behind the status verdict.</summary>
public sealed class HealthOptions
{
    /// <summary>Free space below this (MiB) on the state or source folders makes the node degraded.</summary>
    public long DiskFloorMiB { get; set; } = 512;
}

/// <summary>The Prometheus/OpenMetrics endpoint (docs/operations.md lists the metrics).</summary>
public sealed class MetricsOptions
{
    /// <summary>Serve <c>http://BindAddress:Port/metrics</c>.</summary>
    public bool Enabled { get; set; }

    /// <summary>IP address to listen on; loopback unless a scraper on another machine needs it ("0.0.0.0": every interface).</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    public int Port { get; set; } = 9464;
}

/// <summary>Log output. The console (journal under systemd) is always on.</summary>
public sealed class LoggingSettings
{
    /// <summary>Verbose, Debug, Information, Warning, Error.</summary>
    public string Level { get; set; } = "Information";

    /// <summary>Optional rolling log file (daily, kept <see cref="RetainedFiles"/>); empty disables it.</summary>
    public string File { get; set; } = "";

    public int RetainedFiles { get; set; } = 7;

    /// <summary>Write compact JSON lines instead of text to the console.</summary>
    public bool JsonConsole { get; set; }
}

/// <summary>When a folder source takes a file (<c>Completion</c>).</summary>
public enum FolderCompletion
{
    /// <summary>Once size and time stamp stayed unchanged for StableMs (or at once when renamed in).</summary>
    Stable,

    /// <summary>Writers rename complete files in, so any file seen is complete.</summary>
    Rename,
}

/// <summary>What a folder source does with a finished file (<c>After</c>).</summary>
public enum FolderAfter
{
    /// <summary>To done/, or to failed/ with a reason file.</summary>
    Move,

    /// <summary>Left in place; the journal keeps it from being processed again.</summary>
    Leave,
}

/// <summary>Which frames a camera source passes on (<c>Sampling</c>).</summary>
public enum CameraSampling
{
    /// <summary>Every frame, up to FpsLimit.</summary>
    Continuous,

    /// <summary>One frame every IntervalMs.</summary>
    Interval,

    /// <summary>The latest frame when triggered.</summary>
    Trigger,
}

/// <summary>Where results go (<c>Output:Type</c>).</summary>
public enum OutputType
{
    /// <summary>MQTT through the durable outbox.</summary>
    Mqtt,

    /// <summary>JSON files in a folder (tests, offline use).</summary>
    Folder,
}
