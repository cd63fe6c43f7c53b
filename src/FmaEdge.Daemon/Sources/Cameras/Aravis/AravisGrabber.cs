using System.Diagnostics;
using System.Globalization;
using FmaEdge.Daemon.Configuration;
using OpenCvSharp;
using static FmaEdge.Daemon.Sources.Cameras.Aravis.AravisNative;

namespace FmaEdge.Daemon.Sources.Cameras.Aravis;

/// <summary>A GenICam camera (GigE Vision or USB3 Vision) through Aravis. Selects the camera by device id, serial number or
/// address (re-enumerated at every open, so a camera that comes back under another IP is found by its serial), applies
/// the configured features in order (every unknown or refused one listed in <see cref="Problems"/>), and streams into a
/// ring of buffers. Frames whose packets did not all arrive are counted (<see cref="GrabberCounters.Incomplete"/>) and not
/// delivered; GigE resend requests are counted from the stream's statistics. Software triggers are taken only while the
/// camera acquires, queued, and sent from the capture thread one at a time: the next only once the previous one's frame
/// arrived, because a camera ignores a trigger that comes while it is still exposing or sending (N triggers in a burst
/// would give one frame). Every Aravis call for the camera happens on the capture thread.</summary>
public sealed class AravisGrabber : IFrameGrabber
{
    private const int BufferCount = 8;

    // Triggers waiting for the camera beyond this are refused: the caller learns at once that the line outruns the camera.
    private const int MaxPendingTriggers = 64;
    private static readonly Lock DeviceListLock = new();
    private readonly SourceOptions _options;
    private readonly GenICamOptions _g;
    private readonly TimeSpan _readTimeout;
    private readonly List<string> _problems = [];
    private IntPtr _camera;
    private IntPtr _stream;
    private volatile string? _abort;
    private volatile bool _acquiring;
    private int _pendingTriggers;
    private DateTimeOffset? _triggerSentAt; // the trigger whose frame is awaited (capture thread only)
    private long _triggerSentTimestamp;

    public AravisGrabber(SourceOptions options, TimeSpan readTimeout)
    {
        _options = options;
        _g = options.GenICam;
        _readTimeout = readTimeout;
        Info = new CameraInfo("aravis", options.Uri);
    }

    public CameraInfo Info { get; private set; }

    public GrabberCounters Counters { get; } = new();

    /// <summary>Features that were unknown to the camera or refused, one line each ("ExposureTime=5: not writable").</summary>
    public IReadOnlyList<string> Problems => _problems;

    /// <summary>True when frames come only when triggered (software or hardware), so silence is not a stall.</summary>
    public bool WaitsForTriggers => _g.Trigger != GenICamOptions.FreeRunning;

    public void Open(CancellationToken cancellationToken)
    {
        var (id, address) = Find(_options.Uri);
        _camera = arv_camera_new(id, out var err);
        Check(err, $"cannot open camera {id}");
        if (_camera == IntPtr.Zero)
        {
            throw new CameraException($"cannot open camera {id}");
        }

        var model = Str(arv_camera_get_model_name(_camera, out err));
        FreeError(err);
        var serial = Str(arv_camera_get_device_serial_number(_camera, out err));
        FreeError(err);
        Configure();
        arv_camera_get_region(_camera, out _, out _, out var width, out var height, out err);
        Check(err, "read the region");
        var pixelFormat = Str(arv_camera_get_pixel_format_as_string(_camera, out err)) ?? "?";
        Check(err, "read PixelFormat");
        if (!AravisPixels.IsSupported(pixelFormat))
        {
            throw new CameraException($"pixel format {pixelFormat} is not supported (use {string.Join(", ", AravisPixels.Supported)})");
        }

        Info = new CameraInfo("aravis", address ?? id, model, serial, pixelFormat, width, height);
        var payload = arv_camera_get_payload(_camera, out err);
        Check(err, "read PayloadSize");
        _stream = arv_camera_create_stream(_camera, IntPtr.Zero, IntPtr.Zero, out err);
        Check(err, "create the stream");
        for (var i = 0; i < BufferCount; i++)
        {
            arv_stream_push_buffer(_stream, arv_buffer_new(payload, IntPtr.Zero));
        }

        arv_camera_set_acquisition_mode(_camera, AcquisitionModeContinuous, out err);
        Check(err, "set AcquisitionMode Continuous");
        arv_camera_start_acquisition(_camera, out err);
        Check(err, "start acquisition");
        _acquiring = _abort is null;
    }

    public FrameMeta? Read(Mat frame, CancellationToken cancellationToken)
    {
        try
        {
            return ReadFrame(frame, cancellationToken);
        }
        catch
        {
            _acquiring = false; // this connection is over: refuse triggers it would never send
            throw;
        }
    }

    private FrameMeta? ReadFrame(Mat frame, CancellationToken cancellationToken)
    {
        var waitingSince = Stopwatch.GetTimestamp();
        var lastProbe = waitingSince;
        while (true)
        {
            if (_abort is { } why)
            {
                throw new CameraException(why);
            }

            cancellationToken.ThrowIfCancellationRequested();
            SendNextTrigger();
            // Short waits while software-triggered: a queued trigger is sent within 20 ms.
            var buffer = arv_stream_timeout_pop_buffer(_stream, _g.Trigger == GenICamOptions.Software ? 20_000UL : 100_000UL);
            UpdateResends();
            if (buffer == IntPtr.Zero)
            {
                CheckAlive(waitingSince, ref lastProbe);
                continue;
            }

            try
            {
                // Triggers go out one at a time, so this frame (complete or not) is the answer to the one in flight.
                var triggered = _triggerSentAt;
                _triggerSentAt = null;
                var status = arv_buffer_get_status(buffer);
                if (status != 0)
                {
                    // Missing packets (after resends), wrong packet id, size mismatch, timeout: the frame is lost.
                    Counters.AddIncomplete(1);
                    waitingSince = Stopwatch.GetTimestamp();
                    continue;
                }

                AravisPixels.ToMat(buffer, frame);
                var frameId = (long)arv_buffer_get_frame_id(buffer);
                var cameraNs = (long)arv_buffer_get_timestamp(buffer);
                // Host time of the frame's first packet: the best host-side time for a hardware or free-running frame.
                var hostNs = (long)arv_buffer_get_system_timestamp(buffer);
                var captured = triggered ?? (hostNs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(hostNs / 1_000_000) : DateTimeOffset.UtcNow);
                return new FrameMeta(captured, frameId, cameraNs);
            }
            finally
            {
                arv_stream_push_buffer(_stream, buffer);
            }
        }
    }

    public bool SoftwareTrigger()
    {
        // Not while (re)connecting: the trigger would be lost, or fire late at whatever is in front of the camera then.
        if (_g.Trigger != GenICamOptions.Software || !_acquiring)
        {
            return false;
        }

        if (Interlocked.Increment(ref _pendingTriggers) > MaxPendingTriggers)
        {
            Interlocked.Decrement(ref _pendingTriggers);
            return false;
        }

        return true;
    }

    public void Abort(string reason)
    {
        _acquiring = false;
        _abort ??= reason;
    }

    public void Dispose()
    {
        _acquiring = false;
        if (_camera != IntPtr.Zero && _stream != IntPtr.Zero)
        {
            arv_camera_stop_acquisition(_camera, out var err);
            FreeError(err);
        }

        if (_stream != IntPtr.Zero)
        {
            g_object_unref(_stream);
            _stream = IntPtr.Zero;
        }

        if (_camera != IntPtr.Zero)
        {
            g_object_unref(_camera);
            _camera = IntPtr.Zero;
        }
    }

    /// <summary>The Aravis device id for a selector (device id, serial number or address) and the camera's address.</summary>
    private static (string Id, string? Address) Find(string selector)
    {
        lock (DeviceListLock)
        {
            arv_update_device_list();
            var n = arv_get_n_devices();
            var seen = new List<string>();
            for (uint i = 0; i < n; i++)
            {
                var id = Str(arv_get_device_id(i)) ?? "";
                var serial = Str(arv_get_device_serial_nbr(i));
                var address = Str(arv_get_device_address(i));
                if (selector.Length == 0 || selector == id || selector == serial || selector == address)
                {
                    return (id, address);
                }

                seen.Add($"{id} (serial {serial}, address {address})");
            }

            throw new CameraException(seen.Count == 0
                ? $"no GenICam camera found for '{selector}' (none discovered)"
                : $"no GenICam camera matches '{selector}'; found: {string.Join("; ", seen)}");
        }
    }

    /// <summary>Applies the configured settings, then the feature list in order; problems are collected, not thrown,
    /// except a pixel format the camera refuses (frames would not be what the model expects).</summary>
    private void Configure()
    {
        IntPtr err;
        if (_g.PixelFormat.Length > 0)
        {
            arv_camera_set_pixel_format_from_string(_camera, _g.PixelFormat, out err);
            Check(err, $"set PixelFormat {_g.PixelFormat}");
        }

        if (_g.Region.Length > 0)
        {
            var r = GenICamOptions.ParseRegion(_g.Region);
            arv_camera_set_region(_camera, r[0], r[1], r[2], r[3], out err);
            Note(err, $"Region={_g.Region}");
        }

        if (_g.ExposureUs is { } exposure)
        {
            arv_camera_set_exposure_time(_camera, exposure, out err);
            Note(err, $"ExposureUs={exposure.ToString(CultureInfo.InvariantCulture)}");
        }

        if (_g.Gain is { } gain)
        {
            arv_camera_set_gain(_camera, gain, out err);
            Note(err, $"Gain={gain.ToString(CultureInfo.InvariantCulture)}");
        }

        if (_g.FrameRate is { } fps)
        {
            arv_camera_set_frame_rate(_camera, fps, out err);
            Note(err, $"FrameRate={fps.ToString(CultureInfo.InvariantCulture)}");
        }

        if (_g.PacketSize is { } packet && arv_camera_is_gv_device(_camera))
        {
            arv_camera_gv_set_packet_size(_camera, packet, out err);
            Note(err, $"PacketSize={packet.ToString(CultureInfo.InvariantCulture)}");
        }

        foreach (var entry in _g.Features)
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            SetFeature(entry[..eq].Trim(), entry[(eq + 1)..].Trim());
        }

        switch (_g.Trigger)
        {
            case GenICamOptions.Software:
                SetFeature("TriggerSelector", "FrameStart", optional: true);
                SetFeature("TriggerMode", "On");
                SetFeature("TriggerSource", "Software");
                break;
            case GenICamOptions.Hardware:
                SetFeature("TriggerSelector", "FrameStart", optional: true);
                SetFeature("TriggerMode", "On");
                SetFeature("TriggerSource", _g.TriggerSource);
                if (_g.TriggerActivation.Length > 0)
                {
                    SetFeature("TriggerActivation", _g.TriggerActivation);
                }

                break;
            default:
                SetFeature("TriggerMode", "Off", optional: true);
                break;
        }
    }

    /// <summary>A feature's current value as the camera reports it (null when unknown or unreadable); call after
    /// <see cref="Open"/>. Lets the caller see what the camera really applied (cameras round and clamp).</summary>
    public string? ReadFeature(string name)
    {
        var node = arv_device_get_feature(arv_camera_get_device(_camera), name);
        if (node == IntPtr.Zero)
        {
            return null;
        }

        var value = Str(arv_gc_feature_node_get_value_as_string(node, out var err));
        if (err != IntPtr.Zero)
        {
            FreeError(err);
            return null;
        }

        return value;
    }

    private void SetFeature(string name, string value, bool optional = false)
    {
        var device = arv_camera_get_device(_camera);
        var node = arv_device_get_feature(device, name);
        if (node == IntPtr.Zero)
        {
            if (!optional)
            {
                _problems.Add($"{name}={value}: unknown feature");
            }

            return;
        }

        arv_gc_feature_node_set_value_from_string(node, value, out var err);
        if (err != IntPtr.Zero)
        {
            _problems.Add($"{name}={value}: refused ({TakeMessage(err)})");
            return;
        }

        var now = Str(arv_gc_feature_node_get_value_as_string(node, out err));
        FreeError(err);
        if (now is not null && now != value && !SameNumber(now, value))
        {
            _problems.Add($"{name}={value}: camera kept {now}");
        }
    }

    private static bool SameNumber(string a, string b) =>
        double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
        && double.TryParse(b, NumberStyles.Float, CultureInfo.InvariantCulture, out var y)
        && Math.Abs(x - y) <= 1e-6 * Math.Max(1, Math.Abs(y));

    private void Note(IntPtr err, string what)
    {
        if (err != IntPtr.Zero)
        {
            _problems.Add($"{what}: refused ({TakeMessage(err)})");
        }
    }

    /// <summary>Sends one queued trigger when no frame is awaited; its send time becomes the frame's capture time.</summary>
    private void SendNextTrigger()
    {
        if (_triggerSentAt is not null || Volatile.Read(ref _pendingTriggers) == 0)
        {
            return;
        }

        Interlocked.Decrement(ref _pendingTriggers);
        var at = DateTimeOffset.UtcNow;
        _triggerSentTimestamp = Stopwatch.GetTimestamp();
        arv_camera_software_trigger(_camera, out var err);
        Check(err, "software trigger");
        _triggerSentAt = at;
        Counters.AddTriggerSent();
    }

    private void UpdateResends()
    {
        var resends = (long)arv_stream_get_info_uint64_by_name(_stream, "n_resend_requests");
        var delta = resends - Counters.Resends;
        if (delta > 0)
        {
            Counters.AddResends(delta);
        }
    }

    /// <summary>No buffer yet: a free-running camera that stays silent past the deadline, a trigger without its frame, or
    /// a triggered camera that no longer answers a register read, ends the connection.</summary>
    private void CheckAlive(long waitingSince, ref long lastProbe)
    {
        var waited = Stopwatch.GetElapsedTime(waitingSince);
        if (!WaitsForTriggers && waited > _readTimeout)
        {
            throw new CameraException($"no frame from the camera for {waited.TotalSeconds:F0} s");
        }

        if (_triggerSentAt is not null && Stopwatch.GetElapsedTime(_triggerSentTimestamp) > _readTimeout)
        {
            throw new CameraException($"software trigger without a frame for {Stopwatch.GetElapsedTime(_triggerSentTimestamp).TotalSeconds:F0} s");
        }

        if (WaitsForTriggers && Stopwatch.GetElapsedTime(lastProbe) > TimeSpan.FromSeconds(1))
        {
            lastProbe = Stopwatch.GetTimestamp();
            arv_camera_get_payload(_camera, out var err);
            if (err != IntPtr.Zero)
            {
                throw new CameraException($"camera lost: {TakeMessage(err)}");
            }
        }
    }

    private static void FreeError(IntPtr err)
    {
        if (err != IntPtr.Zero)
        {
            g_error_free(err);
        }
    }
}
