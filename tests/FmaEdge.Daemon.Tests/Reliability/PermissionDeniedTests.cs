using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FmaEdge.Daemon.Tests.Hosting;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;

namespace FmaEdge.Daemon.Tests.Reliability;

/// <summary>An image the daemon is not allowed to read, through the real fma-edge process. Root reads any file whatever its
/// mode (CAP_DAC_OVERRIDE), and tests run as root in CI, so there the daemon is started as the unprivileged user
/// 65534 (nobody) with <c>setpriv</c>, as the systemd unit runs it as its own user; as an ordinary user the test
/// runs the daemon as itself. Either way the test first proves that the daemon's user really cannot read the file.</summary>
public sealed class PermissionDeniedTests
{
    private const int Nobody = 65534;
    private static readonly bool AsRoot = Environment.UserName == "root";
    private static string Exe => Path.Combine(AppContext.BaseDirectory, "fma-edge.dll");

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

        var images = TestPaths.SampleImages("val");
        var secret = Path.Combine(inbox, "secret.png");
        File.Copy(images[0], secret);
        File.SetUnixFileMode(secret, UnixFileMode.None);
        Assert.NotEqual(0, await RunAsDaemonUserAsync(root, "cat", secret)); // really unreadable for the daemon's user

        using var daemon = Start(root, config);
        try
        {
            await DaemonHarness.WaitUntilAsync(() => FloorObserver.EventsFor(sub, "bad_image", "secret.png").Count > 0,
                "the bad_image event for secret.png", 60_000);
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
            using var status = Process.Start(new ProcessStartInfo("dotnet", [Exe, "status", "--json", "--socket", Path.Combine(root, "run", "status.sock")])
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
            using (var term = Process.Start("kill", ["-TERM", daemon.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            await daemon.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(40));
        }

        Assert.Equal(0, daemon.ExitCode);
    }

    /// <summary>fma-edge run, as user 65534 when the tests run as root.</summary>
    private static Process Start(string root, string config)
    {
        var psi = AsRoot
            ? new ProcessStartInfo("setpriv", [.. DropPrivileges, "dotnet", Exe, "run", "--config", config])
            : new ProcessStartInfo("dotnet", [Exe, "run", "--config", config]);
        psi.UseShellExecute = false;
        psi.Environment["HOME"] = Path.Combine(root, "home");
        psi.Environment["DOTNET_CLI_HOME"] = Path.Combine(root, "home");
        return Process.Start(psi)!;
    }

    private static async Task<int> RunAsDaemonUserAsync(string root, string program, params string[] args)
    {
        var psi = AsRoot ? new ProcessStartInfo("setpriv", [.. DropPrivileges, program, .. args]) : new ProcessStartInfo(program, args);
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        psi.Environment["HOME"] = Path.Combine(root, "home");
        using var p = Process.Start(psi)!;
        await p.WaitForExitAsync();
        return p.ExitCode;
    }

    private static string[] DropPrivileges =>
        [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--"];
}
