using FmaEdge.Daemon.Diagnostics;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Output;

/// <summary>Publishes events without letting a delivery problem break the caller. Stateless and thread-safe.</summary>
public static class Events
{
    /// <summary>Publishes <paramref name="evt"/>; a sink failure is logged, never thrown.</summary>
    public static async ValueTask EmitAsync(IReporter sink, ILogger log, DaemonEvent evt, CancellationToken cancellationToken)
    {
        try
        {
            await sink.PublishEventAsync(evt, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.SinkError(log, "event " + evt.Kind, e.Message);
        }
    }
}
