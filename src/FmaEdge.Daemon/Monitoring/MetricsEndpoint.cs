using System.Net;
using System.Net.Sockets;
using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace FmaEdge.Daemon.Monitoring;

/// <summary>Serves <see cref="DaemonMetrics"/> at <c>http://BindAddress:Port/metrics</c> while the host runs: Prometheus
/// text by default, OpenMetrics when the scraper's Accept header asks for <c>application/openmetrics-text</c> (as
/// Prometheus does). A port that cannot be bound fails the start: a monitoring endpoint that silently is not there is
/// worse than a clear error. Started and stopped once by the host; requests are served concurrently.</summary>
public sealed class MetricsEndpoint(MetricsOptions options, DaemonMetrics metrics, ILogger<MetricsEndpoint> log) : IHostedService
{
    private const string TextContentType = "text/plain; version=0.0.4; charset=utf-8";
    private const string OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    private static readonly TimeSpan ScrapeTimeout = TimeSpan.FromSeconds(10);

    private HttpListener? _listener;
    private Task? _accepting;

    /// <summary>The URL served, e.g. http://127.0.0.1:9464/metrics.</summary>
    public string Url => $"http://{HostOf(IPAddress.Parse(options.BindAddress))}:{options.Port}/metrics";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var listener = new HttpListener();
        var address = IPAddress.Parse(options.BindAddress);
        listener.Prefixes.Add($"http://{ListenerHost(address)}:{options.Port}/");
        if (IPAddress.IsLoopback(address))
        {
            listener.Prefixes.Add($"http://localhost:{options.Port}/"); // so `curl localhost:9464/metrics` is served too
        }
        try
        {
            listener.Start();
        }
        catch (HttpListenerException e)
        {
            listener.Close();
            throw new InvalidOperationException($"FmaEdge:Metrics cannot listen on {options.BindAddress}:{options.Port}: {e.Message}", e);
        }

        _listener = listener;
        _accepting = Task.Run(() => AcceptAsync(listener), CancellationToken.None);
        Log.MetricsServing(log, Url);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listener is null)
        {
            return;
        }

        _listener.Close(); // ends GetContextAsync in the accept loop
        await _accepting!.WaitAsync(cancellationToken);
        _listener = null;
    }

    private async Task AcceptAsync(HttpListener listener)
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }

            _ = Task.Run(() => ServeAsync(context));
        }
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var path = context.Request.Url?.AbsolutePath.TrimEnd('/');
            if (path != "/metrics" || context.Request.HttpMethod is not ("GET" or "HEAD"))
            {
                response.StatusCode = path == "/metrics" ? 405 : 404;
                return;
            }

            var openMetrics = context.Request.AcceptTypes?.Any(a => a.StartsWith("application/openmetrics-text", StringComparison.OrdinalIgnoreCase)) == true;
            using var buffer = new MemoryStream();
            using var timeout = new CancellationTokenSource(ScrapeTimeout);
            await metrics.Registry.CollectAndExportAsTextAsync(buffer,
                openMetrics ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText, timeout.Token);
            response.ContentType = openMetrics ? OpenMetricsContentType : TextContentType;
            response.ContentLength64 = buffer.Length;
            if (context.Request.HttpMethod == "GET")
            {
                buffer.Position = 0;
                await buffer.CopyToAsync(response.OutputStream, timeout.Token);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.MetricsScrapeFailed(log, e.Message);
            try
            {
                response.StatusCode = 503;
            }
            catch (InvalidOperationException)
            {
                // headers already sent: the scraper sees a cut-off body and records a failed scrape
            }
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
            {
                // the scraper went away
            }
        }
    }

    // HttpListener matches the request's Host header against the prefix: an unspecified address must be the "+" wildcard
    // (any host name), a specific address is served to requests that name it.
    private static string ListenerHost(IPAddress address) =>
        address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? "+" : HostOf(address);

    private static string HostOf(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
}
