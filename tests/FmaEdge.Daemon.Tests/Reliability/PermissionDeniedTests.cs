using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>An image the daemon is not allowed to read, through the real fma-edge process. Root reads any file whatever its
/// mode (CAP_DAC_OVERRIDE), and tests run as root in CI, so there the daemon is started as the unprivileged user
/// 65534 (nobody) with <c>setpriv</c>, as the systemd unit runs it as its own user; as an ordinary user the test
/// runs the daemon as itself. Either way the test first proves that the daemon's user really cannot read the file.
/// User 65534 may not reach the build output (a clone in a private folder: /root, or a <c>mktemp -d</c> folder, is mode
/// 0700), so as root the test runs the daemon from a world-readable copy of it in its own temporary folder, and checks
/// up front that the daemon's user can start .NET and read that copy, failing at once with the reason if not.</summary>
public sealed partial class PermissionDeniedTests
{
    private const int Nobody = 65534;
    private const int Exdev = 18;
    private static readonly bool AsRoot = Environment.UserName == "root";

    [Fact]
    public async Task Run_FileTheDaemonCannotRead_SetAsideAsPermissionDeniedAndKeepsServing()
    {
        using var tmp = new TempFolder("perm");
        var root = tmp.Path;
        var logDir = Path.Combine(root, "logs");
        await using var broker = await MosquittoBroker.StartNewAsync();
        await using var sub = await Subscriber.ConnectAsync(broker);
        var settings = DaemonHarness.Settings(root, FloorObserver.ViaBroker(broker, logDir));
        var (config, inbox) = await ProcessTests.PrepareAsync(root, settings, []);
        foreach (var dir in new[] { root, inbox, logDir, Path.Combine(root, "home") })
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111); // the daemon's user creates done/, failed/, state/ ...
        }

        var exe = AsRoot ? Path.Combine(StageBuildOutput(root), "fma-edge.dll") : Path.Combine(AppContext.BaseDirectory, "fma-edge.dll");
        await AssertDaemonUserCanRunAsync(root, exe);
        var images = TestPaths.SampleImages("val");
        var secret = Path.Combine(inbox, "secret.png");
        File.Copy(images[0], secret);
        File.SetUnixFileMode(secret, UnixFileMode.None);
        Assert.NotEqual(0, (await RunAsDaemonUserAsync(root, "cat", secret)).Code); // really unreadable for the daemon's user

        using var daemon = Start(root, exe, config);
        try
        {
            await DaemonHarness.WaitUntilAsync(() => FloorObserver.EventsFor(sub, "bad_image", "secret.png").Count > 0
                || daemon.HasExited, "the bad_image event for secret.png", 60_000);
            Assert.False(daemon.HasExited, $"fma-edge exited early with code {(daemon.HasExited ? daemon.ExitCode : 0)} (its output is above)");
            var e = Assert.Single(FloorObserver.EventsFor(sub, "bad_image", "secret.png"));
            Assert.Equal("permission-denied", e.GetProperty("details").GetProperty("reason").GetString());

            // Keeps serving: a readable image dropped afterwards gets its result.
            ImageBytes.DropByRename(inbox, "good.png", await File.ReadAllBytesAsync(images[1]));
            File.SetUnixFileMode(Path.Combine(inbox, "good.png"), (UnixFileMode)0b110_100_100);
            await DaemonHarness.WaitUntilAsync(() => sub.Results.Any(r => r.GetProperty("image").GetProperty("id").GetString() == "good.png"),
                "the result of good.png", 30_000);

            // Set aside with the reason beside it (the file itself is moved, which needs only the folder's permission).
            Assert.True(File.Exists(Path.Combine(inbox, "failed", "secret.png")));
            Assert.StartsWith("permission-denied:", await File.ReadAllTextAsync(Path.Combine(inbox, "failed", "secret.png.reason.txt")), StringComparison.Ordinal);
            Assert.Contains(FloorObserver.LogLinesFor(logDir, 3000, "Image", "secret.png"),
                l => l.GetProperty("Reason").GetString() == "permission-denied");

            // `fma-edge status --json` counts it under its reason.
            using var status = Process.Start(new ProcessStartInfo("dotnet", [exe, "status", "--json", "--socket", Path.Combine(root, "run", "status.sock")])
            {
                RedirectStandardOutput = true,
            })!;
            var json = await status.StandardOutput.ReadToEndAsync();
            await status.WaitForExitAsync();
            var counts = JsonDocument.Parse(json).RootElement.GetProperty("counts");
            Assert.Equal(1, counts.GetProperty("failed").GetInt64());
            Assert.Equal(1, counts.GetProperty("failedByReason").GetProperty("permission-denied").GetInt64());
            Assert.Equal(1, counts.GetProperty("processed").GetInt64());
        }
        finally
        {
            if (!daemon.HasExited)
            {
                await daemon.SignalAsync("TERM");
                await daemon.WaitForExitAsync(TimeSpan.FromSeconds(40));
            }
        }

        Assert.Equal(0, daemon.ExitCode);
    }

    /// <summary>fma-edge run, as user 65534 when the tests run as root.</summary>
    private static DaemonProcess Start(string root, string exe, string config)
    {
        var psi = AsRoot
            ? new ProcessStartInfo("setpriv", [.. DropPrivileges, "dotnet", exe, "run", "--config", config])
            : new ProcessStartInfo("dotnet", [exe, "run", "--config", config]);
        psi.Environment["HOME"] = Path.Combine(root, "home");
        psi.Environment["DOTNET_CLI_HOME"] = Path.Combine(root, "home");
        return DaemonProcess.Start(psi);
    }

    /// <summary>The build output linked (or, across file systems, copied) into a world-readable folder under
    /// <paramref name="root"/>, so user 65534 can load it wherever the repository was cloned. Returns the folder.</summary>
    private static string StageBuildOutput(string root)
    {
        const UnixFileMode open = (UnixFileMode)0b111_101_101; // rwxr-xr-x, set after creation (the umask may be tighter)
        var from = AppContext.BaseDirectory;
        var app = Path.Combine(root, "app");
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories).Select(d => Path.GetRelativePath(from, d)).Prepend("."))
        {
            var to = Path.Combine(app, dir);
            Directory.CreateDirectory(to);
            File.SetUnixFileMode(to, open);
        }

        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(app, Path.GetRelativePath(from, file));
            var mode = File.GetUnixFileMode(file);
            if (mode.HasFlag(UnixFileMode.OtherRead) && Link(file, to) == 0)
            {
                continue; // a hard link shares the file's mode, which already lets others read it
            }

            var errno = Marshal.GetLastPInvokeError();
            Assert.True(!mode.HasFlag(UnixFileMode.OtherRead) || errno == Exdev, $"cannot link {file} to {to}: errno {errno}");
            File.Copy(file, to);
            File.SetUnixFileMode(to, mode | UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        return app;
    }

    /// <summary>Fails at once, saying why, when the daemon's user cannot start .NET or read the build output.</summary>
    private static async Task AssertDaemonUserCanRunAsync(string root, string exe)
    {
        var (code, output) = await RunAsDaemonUserAsync(root, "dotnet", "--list-runtimes");
        Assert.True(code == 0, $"user {(AsRoot ? Nobody : Environment.UserName)} cannot run dotnet (exit {code}: {output.Trim()}); " +
            "install the .NET runtime where every user can reach it (e.g. /usr/share/dotnet), not under a private home folder");
        (code, output) = await RunAsDaemonUserAsync(root, "head", "-c", "1", exe);
        Assert.True(code == 0, $"user {(AsRoot ? Nobody : Environment.UserName)} cannot read {exe} (exit {code}: {output.Trim()})");
    }

    private static async Task<(int Code, string Output)> RunAsDaemonUserAsync(string root, string program, params string[] args)
    {
        var psi = AsRoot ? new ProcessStartInfo("setpriv", [.. DropPrivileges, program, .. args]) : new ProcessStartInfo(program, args);
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        psi.Environment["HOME"] = Path.Combine(root, "home");
        psi.Environment["DOTNET_CLI_HOME"] = Path.Combine(root, "home");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (p.ExitCode, await stdout + await stderr);
    }

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string newPath);

    private static string[] DropPrivileges =>
        [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--"];
}
