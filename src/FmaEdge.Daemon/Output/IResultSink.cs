namespace FmaEdge.Daemon.Output;

/// <summary>Where results go, in two roles: <see cref="IResultJournal"/> (durable: what was committed, commit results)
/// and <see cref="IReporter"/> (best effort: events, retained status and model, stats), plus the connection's life. The
/// MQTT sink (durable outbox + published journal) implements it in production, <see cref="JsonFolderResultSink"/> in
/// tests and offline use; a second protocol is one more implementation. Parts that only report (sources, the model
/// manager) take an <see cref="IReporter"/>.
/// Thread-safety: implementations must accept calls from several threads at once.</summary>
public interface IResultSink : IResultJournal, IReporter, IAsyncDisposable
{
    /// <summary>Starts connections and replays anything stored but not yet delivered. Called once before any other member.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Waits, after <see cref="StartAsync"/>, until the sink's first attempt to reach its destination has ended
    /// (connected or not; bounded by the sink's own timeouts). The daemon opens its sources after it, so what is waiting
    /// at start goes out live when the destination is up. Sinks that need no connection complete at once.</summary>
    Task WaitForFirstConnectAttemptAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Delivery state for the status snapshot; cheap and non-blocking.</summary>
    SinkState State { get; }

    /// <summary>Delivers what can be delivered within the token's time and stops (SIGTERM drain). Results still undelivered stay stored.</summary>
    Task StopAsync(CancellationToken cancellationToken);
}
