using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FmaEdge.Messaging;
using FmaEdge.Messaging.Fleet;
using Spectre.Console;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge fleet [--broker host:port] [--once] [--json]</c>: every node on one broker in one table, from
/// their retained status, model and stats topics (nothing is asked of the nodes). Live until Ctrl-C, or once. Exit 0 all
/// nodes online and healthy, 1 some degraded or offline (or none seen), 2 broker unreachable or login refused.</summary>
public static class FleetCommand
{
    public const int AllHealthy = 0;
    public const int SomeNot = 1;
    public const int Unreachable = 2;

    public static Command Create(CliConsole console)
    {
        var broker = new Option<string>("--broker") { Description = "Broker host:port", DefaultValueFactory = _ => "127.0.0.1:1883" };
        var prefix = new Option<string>("--prefix") { Description = "Topic filter matching the nodes' prefixes", DefaultValueFactory = _ => "fma/+" };
        var user = new Option<string?>("--username", "-u") { Description = "Broker user" };
        var password = new Option<string?>("--password", "-P") { Description = "Broker password (or set FMAEDGE_MQTT_PASSWORD, which ps does not show)" };
        var tls = new Option<bool>("--tls") { Description = "Connect with TLS" };
        var ca = new Option<string?>("--cafile") { Description = "PEM of the CA that signed the broker's certificate (implies --tls)" };
        var cert = new Option<string?>("--cert") { Description = "Client certificate PEM (implies --tls)" };
        var key = new Option<string?>("--key") { Description = "Client key PEM" };
        var once = new Option<bool>("--once") { Description = "Print the table once and exit" };
        var json = new Option<bool>("--json") { Description = "Print JSON once (implies --once)" };
        var wait = new Option<double>("--wait") { Description = "With --once: seconds to collect the retained messages", DefaultValueFactory = _ => 2 };
        var cmd = new Command("fleet", "Every node on a broker: health, model, provider, images/s, failures, outbox, last seen, online/offline")
        {
            broker, prefix, user, password, tls, ca, cert, key, once, json, wait,
        };
        cmd.SetAction((r, ct) =>
        {
            var (host, port) = ParseBroker(r.GetValue(broker)!);
            var options = new MqttOptions
            {
                Host = host,
                Port = port,
                Username = r.GetValue(user),
                Password = r.GetValue(password) ?? Environment.GetEnvironmentVariable("FMAEDGE_MQTT_PASSWORD"),
                ConnectTimeoutSeconds = 10,
            };
            options.Tls.Enabled = r.GetValue(tls) || r.GetValue(ca) is not null || r.GetValue(cert) is not null;
            options.Tls.CaFile = r.GetValue(ca);
            options.Tls.ClientCertificateFile = r.GetValue(cert);
            options.Tls.ClientKeyFile = r.GetValue(key);
            return RunAsync(console, options, r.GetValue(prefix)!, r.GetValue(once) || r.GetValue(json), r.GetValue(json), r.GetValue(wait), ct);
        });
        return cmd;
    }

    public static async Task<int> RunAsync(CliConsole console, MqttOptions connection, string prefix, bool once, bool json, double waitSeconds,
        CancellationToken ct)
    {
        await using var monitor = new FleetMonitor(connection, prefix);
        try
        {
            await monitor.StartAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            var why = e is OperationCanceledException ? "no answer within the connect timeout" : e.Message;
            if (json)
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new { broker = monitor.Broker, error = why }, BenchCommand.Json));
            }
            else
            {
                console.Error.WriteLine($"fleet: cannot reach {monitor.Broker}: {why}");
            }

            return Unreachable;
        }

        if (once)
        {
            await Task.Delay(TimeSpan.FromSeconds(Math.Clamp(waitSeconds, 0, 600)), ct);
            var nodes = monitor.Nodes;
            if (json)
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    broker = monitor.Broker,
                    total = nodes.Count,
                    healthy = nodes.Count(n => n.IsHealthy),
                    nodes = nodes.Select(ToJson),
                }, BenchCommand.Json));
            }
            else
            {
                console.Ansi.Write(Table(monitor.Broker, nodes, DateTimeOffset.UtcNow));
            }

            return Verdict(nodes);
        }

        // Live: redraw every second until Ctrl-C; the exit code says how the fleet looked at the end.
        try
        {
            await console.Ansi.Live(Table(monitor.Broker, monitor.Nodes, DateTimeOffset.UtcNow)).StartAsync(async ctx =>
            {
                while (!ct.IsCancellationRequested)
                {
                    ctx.UpdateTarget(Table(monitor.Broker, monitor.Nodes, DateTimeOffset.UtcNow));
                    await Task.Delay(1000, ct);
                }
            });
        }
        catch (OperationCanceledException)
        {
        }

        return Verdict(monitor.Nodes);
    }

    private static int Verdict(IReadOnlyList<FleetNode> nodes) => nodes.Count > 0 && nodes.All(n => n.IsHealthy) ? AllHealthy : SomeNot;

    private static (string Host, int Port) ParseBroker(string s)
    {
        var colon = s.LastIndexOf(':');
        return colon > 0 && int.TryParse(s[(colon + 1)..], CultureInfo.InvariantCulture, out var port)
            ? (s[..colon].Trim('[', ']'), port)
            : (s, 1883);
    }

    private static object ToJson(FleetNode n) => new
    {
        prefix = n.Prefix,
        node = n.Node,
        state = n.State,
        reason = n.Reason,
        health = n.Health,
        version = n.Version,
        session = n.Session,
        model = n.ModelId is null ? null : new { id = n.ModelId, version = n.ModelVersion, sha256 = n.ModelSha256, provider = n.Provider },
        images_per_second = n.ImagesPerSecond,
        images_processed = n.ImagesProcessed,
        images_failed = n.ImagesFailed,
        outbox_depth = n.OutboxDepth,
        last_seen = n.LastSeen,
    };

    private static Table Table(string broker, IReadOnlyList<FleetNode> nodes, DateTimeOffset now)
    {
        var inv = CultureInfo.InvariantCulture;
        var t = new Table().Title($"{Markup.Escape(broker)}: {nodes.Count(n => n.IsHealthy)} of {nodes.Count} node(s) healthy");
        foreach (var c in new[] { "node", "state", "health", "model", "sha256", "provider", "img/s", "failed", "outbox", "last seen" })
        {
            t.AddColumn(c);
        }

        foreach (var n in nodes)
        {
            var state = n.State == "online" ? "[green]online[/]" : n.State is null ? "?" : $"[red]{Markup.Escape(n.State)}[/]" + (n.Reason is null ? "" : $" ({Markup.Escape(n.Reason)})");
            var health = n.Health is null ? "-" : n.Health == "healthy" ? "[green]healthy[/]" : $"[yellow]{Markup.Escape(n.Health)}[/]";
            t.AddRow(
                Markup.Escape(n.Node ?? n.Prefix),
                state,
                health,
                Markup.Escape(n.ModelId is null ? "-" : $"{n.ModelId} v{n.ModelVersion}"),
                Markup.Escape(n.ModelSha256 is { Length: >= 12 } h ? h[..12] : "-"),
                Markup.Escape(n.Provider ?? "-"),
                n.ImagesPerSecond is { } f ? f.ToString("F1", inv) : "-",
                n.ImagesFailed?.ToString(inv) ?? "-",
                n.OutboxDepth?.ToString(inv) ?? "-",
                n.LastSeen is { } s ? $"{Math.Max(0, (now - s).TotalSeconds):F0} s ago" : "-");
        }

        return t;
    }
}
