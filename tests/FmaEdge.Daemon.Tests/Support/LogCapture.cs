using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Keeps every log entry's event id and message, for tests that check what the daemon logged.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(int Id, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue((eventId.Id, formatter(state, exception)));
    }
}
