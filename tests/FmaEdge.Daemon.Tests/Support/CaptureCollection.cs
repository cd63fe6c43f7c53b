namespace FmaEdge.Daemon.Tests.Support;

/// <summary>Test classes that open cameras through OpenCV's FFmpeg in the test host run one at a time: that backend holds
/// a process-wide lock for the whole of an open, so a capture a test leaves blocked in open (on purpose or not) would
/// stall every other test's camera, and their timings would depend on each other.</summary>
[CollectionDefinition(Name)]
public sealed class CaptureCollection
{
    public const string Name = "in-process camera captures";
}
