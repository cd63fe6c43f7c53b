using System.Text.Json;
using System.Text.Json.Serialization;
using FmaEdge.Messaging.Contract;

namespace FmaEdge.Daemon.Output;

/// <summary>An <see cref="IResultSink"/> that writes each result as a JSON file under
/// <c>&lt;root&gt;/results/&lt;source&gt;/&lt;n&gt;.json</c> (n counts commits, so file order is commit order; the file carries
/// n as <c>sequence</c> and a UUID v7 <c>messageId</c>, both assigned in the commit), a journal entry per
/// file key under <c>&lt;root&gt;/journal/&lt;source&gt;/</c>, events to <c>events.jsonl</c>, and the retained facts to
/// <c>status.json</c> and <c>model.json</c>. Files are fsynced before a commit returns. For tests and offline nodes.
/// Thread-safe (one lock).</summary>
public sealed class JsonFolderResultSink : IResultSink
{
    /// <summary>JSON settings used for every file the sink writes (camelCase, indented for humans).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly JsonSerializerOptions Compact = new(Json) { WriteIndented = false };

    private readonly string _root;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _counters = new(StringComparer.Ordinal);
    private readonly MessageIdGenerator _ids = new();
    private readonly TimeProvider _time;

    public JsonFolderResultSink(string root, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    /// <summary>The folder everything is written to.</summary>
    public string Root => _root;

    public SinkState State => new("folder", Directory.Exists(_root), _root, 0);

    /// <summary>Repairs what a crash (kill -9, power loss) can leave: a result written whose journal entry was not,
    /// and half-written temp files. The result file is the truth; the journal is rebuilt from it.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            foreach (var tmp in Directory.EnumerateFiles(_root, "*.tmp", SearchOption.AllDirectories))
            {
                File.Delete(tmp);
            }

            var results = Path.Combine(_root, "results");
            if (!Directory.Exists(results))
            {
                return Task.CompletedTask;
            }

            foreach (var file in Directory.EnumerateFiles(results, "*.json", SearchOption.AllDirectories))
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
                var r = doc.RootElement;
                var journal = JournalPath(r.GetProperty("sourceId").GetString()!, r.GetProperty("fileKey").GetString()!);
                if (!File.Exists(journal))
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(journal)!);
                    WriteDurably(journal, System.Text.Encoding.UTF8.GetBytes(r.GetProperty("messageId").GetString()!));
                }
            }
        }

        return Task.CompletedTask;
    }

    public ValueTask<string?> FindCommittedAsync(string sourceId, string fileKey, CancellationToken cancellationToken)
    {
        var journal = JournalPath(sourceId, fileKey);
        lock (_gate)
        {
            return ValueTask.FromResult(File.Exists(journal) ? File.ReadAllText(journal).Trim() : null);
        }
    }

    public ValueTask<CommitResult> CommitResultAsync(ImageResult result, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var journal = JournalPath(result.SourceId, result.FileKey);
            if (File.Exists(journal))
            {
                return ValueTask.FromResult(new CommitResult(CommitOutcome.Duplicate, File.ReadAllText(journal).Trim()));
            }

            var dir = Path.Combine(_root, "results", result.SourceId);
            Directory.CreateDirectory(dir);
            if (!_counters.TryGetValue(result.SourceId, out var n))
            {
                n = Directory.GetFiles(dir, "*.json").Length;
            }

            var messageId = _ids.Next(_time.GetUtcNow());
            var record = JsonSerializer.SerializeToNode(result, Json)!.AsObject();
            record["messageId"] = messageId;
            record["sequence"] = n + 1;
            WriteDurably(Path.Combine(dir, $"{n + 1:D10}.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));
            _counters[result.SourceId] = ++n;
            Directory.CreateDirectory(Path.GetDirectoryName(journal)!);
            WriteDurably(journal, System.Text.Encoding.UTF8.GetBytes(messageId));
            return ValueTask.FromResult(new CommitResult(CommitOutcome.Committed, messageId, n));
        }
    }

    public ValueTask PublishEventAsync(DaemonEvent evt, CancellationToken cancellationToken)
    {
        var line = JsonSerializer.Serialize(evt, Compact) + "\n";
        lock (_gate)
        {
            File.AppendAllText(Path.Combine(_root, "events.jsonl"), line);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask PublishStatusAsync(NodeStatus status, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            WriteDurably(Path.Combine(_root, "status.json"), JsonSerializer.SerializeToUtf8Bytes(status, Json));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask PublishModelAsync(ModelMessage model, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            WriteDurably(Path.Combine(_root, "model.json"), JsonSerializer.SerializeToUtf8Bytes(model, Json));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask PublishStatsAsync(Status.StatusSnapshot stats, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            WriteDurably(Path.Combine(_root, "stats.json"), JsonSerializer.SerializeToUtf8Bytes(stats, Json));
        }

        return ValueTask.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>Reads back every result of a source in commit order (for tests and tools).</summary>
    public IReadOnlyList<JsonElement> ReadResults(string sourceId)
    {
        var dir = Path.Combine(_root, "results", sourceId);
        return !Directory.Exists(dir)
            ? []
            : Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal)
                .Select(f => JsonDocument.Parse(File.ReadAllBytes(f)).RootElement.Clone()).ToList();
    }

    /// <summary>Reads back every event so far (for tests and tools).</summary>
    public IReadOnlyList<JsonElement> ReadEvents()
    {
        var file = Path.Combine(_root, "events.jsonl");
        lock (_gate)
        {
            return !File.Exists(file)
                ? []
                : File.ReadAllLines(file).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        }
    }

    private string JournalPath(string sourceId, string fileKey) => Path.Combine(_root, "journal", sourceId, fileKey);

    /// <summary>Temp file, fsync, rename: a reader never sees half a file and a crash never leaves one.</summary>
    private static void WriteDurably(string path, byte[] bytes)
    {
        var tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }

        File.Move(tmp, path, overwrite: true);
    }
}
