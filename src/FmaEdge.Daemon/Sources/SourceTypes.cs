using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Output;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Sources;

/// <summary>One kind of source: how its settings are checked (<c>key</c> is its configuration path, <c>watched</c> the
/// folders other sources already watch) and how it is made.</summary>
public sealed record SourceType(
    string Name,
    Action<SourceOptions, string, ConfigErrors, ISet<string>> Validate,
    Func<SourceOptions, IReporter, ILogger, TimeProvider, IImageSource> Create);

/// <summary>The source types by the value of <c>Sources:N:Type</c>. A new kind of source is one class plus one entry
/// here: configuration checks and start-up both read this list.</summary>
public static class SourceTypes
{
    public static readonly IReadOnlyDictionary<string, SourceType> All = new[]
    {
        new SourceType("folder", FolderSource.Validate, (o, reporter, log, time) => new FolderSource(o, log, reporter, time)),
        new SourceType("camera", CameraSource.Validate, (o, reporter, log, time) => new CameraSource(o, reporter, log, time)),
    }.ToDictionary(t => t.Name, StringComparer.Ordinal);
}
