using System.Runtime.InteropServices;

namespace FmaEdge.Daemon.Sources.Cameras.Aravis;

/// <summary>The part of Aravis 0.8's C API the GenICam backend uses (libaravis-0.8.so.0, LGPL; Debian/Ubuntu/JetPack
/// package libaravis-0.8-0), plus the two GLib/GObject calls that free what it returns. Plain P/Invoke, no
/// GObject-introspection. Objects are GObject pointers released with <see cref="g_object_unref"/>; strings returned as
/// <c>const char*</c> belong to Aravis and are copied, never freed. Thread-safety is Aravis's: the backend makes every
/// call for one camera from its capture thread.</summary>
internal static partial class AravisNative
{
    private const string Lib = "libaravis-0.8.so.0";
    private const string GLib = "libglib-2.0.so.0";
    private const string GObject = "libgobject-2.0.so.0";

    public const int AcquisitionModeContinuous = 1;

    [LibraryImport(Lib)]
    public static partial void arv_update_device_list();

    [LibraryImport(Lib)]
    public static partial uint arv_get_n_devices();

    [LibraryImport(Lib)]
    public static partial IntPtr arv_get_device_id(uint index);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_get_device_serial_nbr(uint index);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_get_device_address(uint index);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_get_device_model(uint index);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr arv_camera_new(string? name, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_camera_get_device(IntPtr camera);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_camera_get_model_name(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_camera_get_device_serial_number(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    [return: MarshalAs(UnmanagedType.I4)]
    public static partial bool arv_camera_is_gv_device(IntPtr camera);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void arv_camera_set_pixel_format_from_string(IntPtr camera, string format, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_camera_get_pixel_format_as_string(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_set_exposure_time(IntPtr camera, double microseconds, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_set_gain(IntPtr camera, double gain, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_set_region(IntPtr camera, int x, int y, int width, int height, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_get_region(IntPtr camera, out int x, out int y, out int width, out int height, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_set_frame_rate(IntPtr camera, double fps, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_gv_set_packet_size(IntPtr camera, int size, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_set_acquisition_mode(IntPtr camera, int mode, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial uint arv_camera_get_payload(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_software_trigger(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_camera_create_stream(IntPtr camera, IntPtr callback, IntPtr userData, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_start_acquisition(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial void arv_camera_stop_acquisition(IntPtr camera, out IntPtr error);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr arv_device_get_feature(IntPtr device, string feature);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void arv_gc_feature_node_set_value_from_string(IntPtr node, string value, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_gc_feature_node_get_value_as_string(IntPtr node, out IntPtr error);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_buffer_new(nuint size, IntPtr preallocated);

    [LibraryImport(Lib)]
    public static partial void arv_stream_push_buffer(IntPtr stream, IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_stream_timeout_pop_buffer(IntPtr stream, ulong timeoutMicroseconds);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial ulong arv_stream_get_info_uint64_by_name(IntPtr stream, string name);

    [LibraryImport(Lib)]
    public static partial int arv_buffer_get_status(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial IntPtr arv_buffer_get_data(IntPtr buffer, out nuint size);

    [LibraryImport(Lib)]
    public static partial int arv_buffer_get_image_width(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial int arv_buffer_get_image_height(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial uint arv_buffer_get_image_pixel_format(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial ulong arv_buffer_get_frame_id(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial ulong arv_buffer_get_timestamp(IntPtr buffer);

    [LibraryImport(Lib)]
    public static partial ulong arv_buffer_get_system_timestamp(IntPtr buffer);

    [LibraryImport(GObject)]
    public static partial void g_object_unref(IntPtr obj);

    [LibraryImport(GLib)]
    public static partial void g_error_free(IntPtr error);

    /// <summary>A copy of a <c>const char*</c> Aravis returned (null stays null).</summary>
    public static string? Str(IntPtr p) => p == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(p);

    /// <summary>Throws <see cref="AravisException"/> with the GError's message when <paramref name="error"/> is set, and frees it.</summary>
    public static void Check(IntPtr error, string what)
    {
        if (error != IntPtr.Zero)
        {
            throw new AravisException($"{what}: {TakeMessage(error)}");
        }
    }

    /// <summary>The GError's message (struct GError { GQuark domain; gint code; gchar *message; }); frees the error.</summary>
    public static string TakeMessage(IntPtr error)
    {
        var message = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(error, 8)) ?? "unknown error";
        g_error_free(error);
        return message;
    }
}

/// <summary>An Aravis call failed; the message is the call and Aravis's own error text.</summary>
public sealed class AravisException(string message) : Exception(message);
