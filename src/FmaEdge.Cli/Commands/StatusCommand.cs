using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Output;
using FmaEdge.Daemon.Status;
using Spectre.Console;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge status [--json] [--socket PATH]</c>: asks the running daemon. Exit 0 healthy, 1 degraded (or still
/// starting), 2 not running.</summary>
public static class StatusCommand
{
    public const int Healthy = 0;
    public const int Degraded = 1;
    public const int NotRunning = 2;

    public static Command Create(CliConsole console)
    {
        var json = new Option<bool>("--json") { Description = "Print the raw JSON snapshot (for scripts)" };
        var socket = new Option<string?>("--socket") { Description = "Status socket path (default: from the configuration, /run/fma-edge/status.sock)" };
        var config = FmaEdgeCli.ConfigOption();
        var cmd = new Command("status", "Show the running daemon's health, model, sources, queues, counts, latency, output and disk") { json, socket, config };
        cmd.SetAction((parse, ct) => RunAsync(console, parse.GetValue(socket), parse.GetValue(config)?.FullName, parse.GetValue(json), ct));
        return cmd;
    }

    public static async Task<int> RunAsync(CliConsole console, string? socketPath, string? configFile, bool json, CancellationToken ct)
    {
        if (socketPath is null)
        {
            try
            {
                socketPath = ServiceCollectionExtensions.SocketPath(FmaEdgeConfiguration.Bind(FmaEdgeConfiguration.Build(configFile)));
            }
            catch (ConfigurationErrorsException)
            {
                socketPath = "/run/fma-edge/status.sock";
            }
        }

        string raw;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            raw = await StatusClient.RequestAsync(socketPath, "status", timeout.Token);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            if (json)
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new { health = "not-running", socket = socketPath, error = e.Message }, StatusServer.Json));
            }
            else
            {
                console.Ansi.MarkupLine($"[red]not running[/]: nothing answers on {Markup.Escape(socketPath)} ({Markup.Escape(e.Message)})");
            }

            return NotRunning;
        }

        StatusSnapshot snap;
        try
        {
            snap = JsonSerializer.Deserialize<StatusSnapshot>(raw, StatusServer.Json)!;
        }
        catch (JsonException)
        {
            // The daemon answered but not with a snapshot (its own error reply, or an empty line): it runs, yet cannot
            // say how it is. Degraded, with what it said.
            var said = raw.Length == 0 ? "an empty answer" : raw.Length > 300 ? raw[..300] + "..." : raw;
            if (json)
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new { health = "degraded", socket = socketPath, error = "no status snapshot: " + said }, StatusServer.Json));
            }
            else
            {
                console.Ansi.MarkupLine($"[yellow]degraded[/]: the daemon on {Markup.Escape(socketPath)} answered without a status snapshot: {Markup.Escape(said)}");
            }

            return Degraded;
        }

        if (json)
        {
            await console.Out.WriteLineAsync(raw);
        }
        else
        {
            Render(console.Ansi, snap);
        }

        return snap.Health == "healthy" ? Healthy : Degraded;
    }

    /// <summary>Renders a snapshot as tables.</summary>
    /// <summary>One line per provider tried (whole reason when it failed) and the options each was given.</summary>
    internal static void RenderProviders(IAnsiConsole ansi, ModelStatus? model)
    {
        if (model is null)
        {
            return;
        }

        var attempts = model.ProviderAttempts;
        if (attempts.Count == 0)
        {
            // A daemon older than the attempts field: its one-line notes.
            foreach (var note in model.ProviderNotes)
            {
                ansi.MarkupLine("  provider fallback: " + Markup.Escape(note));
            }

            return;
        }

        foreach (var a in attempts)
        {
            var verdict = a.Succeeded ? "[green]serving[/]" : "[yellow]failed[/]: " + Markup.Escape(a.Reason ?? "");
            ansi.MarkupLine($"  provider {a.Provider}: {verdict}");
            if (a.Settings.Count > 0)
            {
                ansi.MarkupLine("    options: " + Markup.Escape(string.Join(" ", a.Settings.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                    .Select(kv => $"{kv.Key}={kv.Value}"))));
            }
        }
    }

    public static void Render(IAnsiConsole ansi, StatusSnapshot s)
    {
        var inv = CultureInfo.InvariantCulture;
        var colour = s.Health == "healthy" ? "green" : "yellow";
        ansi.MarkupLine($"[bold]fma-edge[/] {Markup.Escape(s.Version)} on [bold]{Markup.Escape(s.Node)}[/]: [{colour}]{s.Health}[/]  " +
            $"up {TimeSpan.FromSeconds(s.UptimeSeconds):d\\.hh\\:mm\\:ss}  pid {s.ProcessId}  session {Markup.Escape(s.Session)}");
        foreach (var p in s.Problems)
        {
            ansi.MarkupLine($"  [yellow]![/] {Markup.Escape(p)}");
        }

        var model = new Table().Title("model").AddColumns("id", "sha256", "provider", "since", "swaps");
        if (s.Model is { } m)
        {
            model.AddRow(Markup.Escape(m.Id + (m.Version.Length > 0 ? " v" + m.Version : "")), m.Sha256[..12], m.Provider,
                m.ActiveSinceUtc.ToString("u", inv), m.Swaps.ToString(inv));
            if (m.Loading is not null)
            {
                model.AddRow("", "", Markup.Escape("loading " + Path.GetFileName(m.Loading)), "", "");
            }

            if (m.LastRejection is { } r)
            {
                model.AddRow(Markup.Escape("refused " + Path.GetFileName(r.Path)), "", Markup.Escape(string.Join("; ", r.Reasons)), r.AtUtc.ToString("u", inv), "");
            }
        }

        ansi.Write(model);
        RenderProviders(ansi, s.Model);

        var sources = new Table().Title("sources").AddColumns("id", "type", "state", "frames", "fps", "last frame", "errors", "dropped", "pending");
        foreach (var src in s.Sources)
        {
            sources.AddRow(Markup.Escape(src.Id), src.Type, Markup.Escape(src.State + (src.Detail is null ? "" : ": " + src.Detail)),
                src.Frames.ToString(inv), src.Fps.ToString("F1", inv), src.LastFrameAgeSeconds is { } a ? a.ToString("F1", inv) + " s ago" : "-",
                src.Errors.ToString(inv), src.Dropped.ToString(inv), src.Pending.ToString(inv));
        }

        ansi.Write(sources);
        var cams = s.Sources.Where(x => x.Camera is not null).ToList();
        if (cams.Count > 0)
        {
            var cameras = new Table().Title("cameras").AddColumns("id", "backend", "camera", "pixel format", "size", "incomplete", "resends", "triggers / delivered");
            foreach (var src in cams)
            {
                var k = src.Camera!;
                var who = string.Join(" ", new[] { k.Model, k.Serial is null ? null : "s/n " + k.Serial, k.Address }.Where(x => !string.IsNullOrEmpty(x)));
                cameras.AddRow(Markup.Escape(src.Id), k.Backend, Markup.Escape(who), Markup.Escape(k.PixelFormat ?? "-"), $"{k.Width}x{k.Height}",
                    k.IncompleteFrames.ToString(inv), k.Resends.ToString(inv), $"{k.TriggersReceived.ToString(inv)} / {k.FramesDelivered.ToString(inv)}");
            }

            ansi.Write(cameras);
            foreach (var p in cams.SelectMany(x => x.Camera!.FeatureProblems.Select(f => $"  camera {x.Id}: feature not applied: {f}")))
            {
                ansi.MarkupLine(Markup.Escape(p));
            }
        }

        var c = s.Counts;
        var q = s.Queues;
        var counts = new Table().Title("pipeline").AddColumns("processed", "failed", "duplicates", "skipped", "dropped", "in flight", "mean batch", "queues (input/infer/publish)");
        counts.AddRow(c.Processed.ToString(inv), c.Failed.ToString(inv), c.Duplicates.ToString(inv), c.Skipped.ToString(inv), c.Dropped.ToString(inv),
            c.InFlight.ToString(inv), c.MeanBatch.ToString("F2", inv), $"{q.Input}/{q.InputCapacity}  {q.Infer}/{q.InferCapacity}  {q.Publish}/{q.PublishCapacity}");
        ansi.Write(counts);
        if (c.FailedByReason.Count > 0)
        {
            ansi.MarkupLine("  failed by reason: " + Markup.Escape(string.Join(", ", c.FailedByReason.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => $"{kv.Key} {kv.Value.ToString(inv)}"))));
        }

        var latency = new Table().Title("latency (ms)").AddColumns("stage", "p50", "p99", "max", "samples");
        foreach (var (stage, l) in s.Latency)
        {
            latency.AddRow(stage, l.P50Ms.ToString("F1", inv), l.P99Ms.ToString("F1", inv), l.MaxMs.ToString("F1", inv), l.Samples.ToString(inv));
        }

        ansi.Write(latency);

        var o = s.Output;
        var output = new Table().Title("output").AddColumns("kind", "endpoint", "connected", "outbox", "detail");
        foreach (var row in new[] { o, o.Sparkplug }.OfType<SinkState>())
        {
            output.AddRow(row.Kind, Markup.Escape(row.Endpoint), row.Connected ? "[green]yes[/]" : "[red]no[/]", row.OutboxDepth.ToString(inv),
                Markup.Escape(row.Detail ?? ""));
        }

        ansi.Write(output);

        var disks = new Table().Title("disk").AddColumns("path", "free MiB", "total MiB", "below floor");
        foreach (var d in s.Disks)
        {
            disks.AddRow(Markup.Escape(d.Path), d.FreeMiB.ToString(inv), d.TotalMiB.ToString(inv), d.BelowFloor ? "[red]yes[/]" : "no");
        }

        ansi.Write(disks);
        if (s.Process is { } proc)
        {
            ansi.MarkupLine($"process: RSS {proc.RssMiB.ToString("F0", inv)} MiB (managed heap {proc.ManagedHeapMiB.ToString("F0", inv)} MiB, " +
                $"committed {proc.ManagedCommittedMiB.ToString("F0", inv)} MiB; SQLite {proc.SqliteMiB.ToString("F1", inv)} MiB), {proc.OpenFiles.ToString(inv)} open files, " +
                $"{proc.Threads.ToString(inv)} threads, GC {string.Join("/", proc.GcCollections.Select(n => n.ToString(inv)))} (gen 0/1/2)");
        }
    }
}
