using FmaEdge.Messaging.Contract;
using Microsoft.Data.Sqlite;

namespace FmaEdge.Messaging.Outbox;

/// <summary>What <see cref="SqliteOutbox.CommitResult"/> did.</summary>
public enum CommitStatus
{
    /// <summary>New file key (or none given): journalled and queued for publishing.</summary>
    Enqueued,

    /// <summary>The file key was already journalled; nothing was queued (policy <see cref="DuplicatePolicy.Skip"/>).</summary>
    DuplicateSkipped,

    /// <summary>The file key was already journalled; queued again with duplicate=true and duplicate_of set
    /// (policy <see cref="DuplicatePolicy.PublishMarked"/>).</summary>
    DuplicateEnqueued,
}

/// <summary>What to do with a result whose (source, file key) is already in the published journal.</summary>
public enum DuplicatePolicy
{
    /// <summary>Do not publish it again (the earlier publication stands).</summary>
    Skip,

    /// <summary>Publish it again, flagged duplicate=true with duplicate_of = the earlier message id.</summary>
    PublishMarked,
}

/// <summary>The outcome of a commit: the status, the message id queued (or the earlier one when skipped), its per
/// (session, source) sequence number (0 when nothing was queued), the earlier message id for duplicates, and the outbox
/// row id (0 when nothing was queued).</summary>
public sealed record JournalCommit(CommitStatus Status, string MessageId, long Seq, string? OriginalMessageId, long OutboxRowId)
{
    /// <summary>True when the file had been published before.</summary>
    public bool IsDuplicate => Status != CommitStatus.Enqueued;
}

/// <summary>A queued message as stored; <see cref="RowId"/> is its place in the queue (not the result's <c>seq</c>).</summary>
public sealed record OutboxRow(long RowId, string Kind, string Topic, string MessageId, string Session, long Generation,
    long EnqueuedUnixMs, byte[] Payload);

/// <summary>Raised in the result of an insert that had to drop messages to stay under the cap.</summary>
public sealed record CapDrop(int Dropped, long DroppedBytes);

/// <summary>A result queued for a second consumer of the outbox (a <see cref="SqliteOutbox"/> feed, e.g. Sparkplug B):
/// its place in the feed, when it was committed, and the result as stored (JSON, with its identity).</summary>
public sealed record FeedRow(long RowId, long EnqueuedUnixMs, byte[] Payload);

/// <summary>One result for <see cref="SqliteOutbox.CommitResults"/>: its topic, message and file key (journal).</summary>
public readonly record struct ResultToCommit(string Topic, ResultMessage Message, string? FileKey);

/// <summary>The durable store-and-forward queue and the published journal, in one SQLite file (WAL,
/// synchronous=FULL): a row is on disk before EnqueueEvent/CommitResult returns, so it survives a crash, kill -9 or
/// power loss, and a journal entry is written in the same transaction as its outbox row. It is the one owner of
/// message identity: each stored message gets its <c>message_id</c> (a UUID v7 greater than every earlier one, also
/// across restarts) and each stored result its <c>seq</c> (per session and source, 1, 2, 3 ...) in the transaction that
/// stores it, so a failed commit takes no number and a replay keeps the identity it was stored with. Rows come back in
/// insertion order (AUTOINCREMENT row id) and leave only through <see cref="Remove"/>.
/// Thread-safe: one connection behind one lock.</summary>
public sealed class SqliteOutbox : IDisposable
{
    /// <summary>Bytes held by SQLite's allocator in this process (page caches, statements), for status and metrics; 0
    /// when SQLite is not loaded (the folder sink has no outbox).</summary>
    public static long MemoryUsedBytes()
    {
        try
        {
            return SQLitePCL.raw.sqlite3_memory_used();
        }
        catch (Exception e) when (e is not OutOfMemoryException) // SQLitePCL throws a plain Exception when no provider is set
        {
            return 0;
        }
    }

    /// <summary>Kind of a result row (dropped first when the cap is hit).</summary>
    public const string KindResult = "result";

    /// <summary>Kind of an event row.</summary>
    public const string KindEvent = "event";

    private readonly Lock _gate = new();
    private readonly SqliteConnection _db;
    private readonly TimeProvider _time;
    private readonly long _maxMessages;
    private readonly long _maxBytes;
    private readonly MessageIdGenerator _ids;
    private long _depth;
    private long _bytes;
    private long _droppedByCap;
    private readonly Dictionary<string, FeedCount> _feeds = [];
    private bool _disposed;

    /// <summary>Opens (or creates) the store for the daemon run <paramref name="session"/> (stamped on every message
    /// stored through this instance). A file that is not a readable SQLite database is renamed to
    /// "*.corrupt-&lt;time&gt;" and a fresh store is created; <see cref="Recovery"/> then says so.</summary>
    /// <para>Each name in <paramref name="feeds"/> gets its own durable queue of every committed result, filled in the
    /// same transaction as the outbox row, emptied only by that consumer (<see cref="RemoveFromFeed"/>), and capped at
    /// <paramref name="maxMessages"/> (oldest dropped first).</para>
    public SqliteOutbox(string path, string session, long maxMessages, long maxBytes, TimeProvider? time = null,
        IReadOnlyCollection<string>? feeds = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentException.ThrowIfNullOrWhiteSpace(session);
        Path = System.IO.Path.GetFullPath(path);
        Session = session;
        _time = time ?? TimeProvider.System;
        _maxMessages = maxMessages;
        _maxBytes = maxBytes;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        try
        {
            _db = Open(Path);
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 11 or 26)
        {
            // SQLITE_CORRUPT / SQLITE_NOTADB: keep the evidence, start empty, and say so rather than refuse to run.
            var aside = $"{Path}.corrupt-{_time.GetUtcNow():yyyyMMddHHmmss}";
            SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                if (File.Exists(Path + suffix))
                {
                    File.Move(Path + suffix, aside + suffix, overwrite: true);
                }
            }

            Recovery = $"outbox file was unreadable ({e.Message}); moved to {aside} and started empty";
            _db = Open(Path);
        }

        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*), COALESCE(SUM(bytes), 0), (SELECT value FROM meta WHERE key = 'last_message_id') FROM outbox";
        using var r = cmd.ExecuteReader();
        r.Read();
        _depth = r.GetInt64(0);
        _bytes = r.GetInt64(1);
        _ids = new MessageIdGenerator(r.IsDBNull(2) ? null : r.GetString(2));
        r.Close();
        foreach (var feed in feeds ?? [])
        {
            _feeds[feed] = new FeedCount();
        }

        // A feed no longer configured (Sparkplug switched off) must not keep its rows for ever.
        using var stale = _db.CreateCommand();
        stale.CommandText = "DELETE FROM feed WHERE name NOT IN (SELECT value FROM json_each($names))";
        stale.Parameters.AddWithValue("$names", System.Text.Json.JsonSerializer.Serialize(_feeds.Keys.ToArray()));
        stale.ExecuteNonQuery();
        RecountFeeds();
    }

    /// <summary>Full path of the database file.</summary>
    public string Path { get; }

    /// <summary>The daemon run whose messages this instance stores.</summary>
    public string Session { get; }

    /// <summary>Non-null when the file was found corrupt at open and replaced.</summary>
    public string? Recovery { get; }

    /// <summary>Pending messages.</summary>
    public long Depth
    {
        get
        {
            lock (_gate)
            {
                return _depth;
            }
        }
    }

    /// <summary>Depth, bytes and oldest age right now.</summary>
    public OutboxStats Stats
    {
        get
        {
            lock (_gate)
            {
                ThrowIfDisposed();
                double? age = null;
                if (_depth > 0)
                {
                    using var cmd = _db.CreateCommand();
                    cmd.CommandText = "SELECT enqueued_ms FROM outbox ORDER BY seq LIMIT 1";
                    if (cmd.ExecuteScalar() is long ms)
                    {
                        age = Math.Max(0, (_time.GetUtcNow().ToUnixTimeMilliseconds() - ms) / 1000.0);
                    }
                }

                return new OutboxStats(_depth, _bytes, age, _maxMessages, _maxBytes, _droppedByCap);
            }
        }
    }

    /// <summary>Queues one event with its identity: a new message id and this store's session (a session already set is
    /// kept). Returns the event as stored, its row id and any cap drop it caused.</summary>
    public (EventMessage Stored, long RowId, CapDrop? Drop) EnqueueEvent(string topic, EventMessage message, long generation)
    {
        ArgumentNullException.ThrowIfNull(message);
        lock (_gate)
        {
            ThrowIfDisposed();
            using var tx = _db.BeginTransaction();
            var stored = message with
            {
                MessageId = _ids.Next(_time.GetUtcNow()),
                Session = string.IsNullOrEmpty(message.Session) ? Session : message.Session,
            };
            var payload = MessageJson.Serialize(stored);
            var drop = MakeRoom(tx, payload.Length);
            var rowId = Insert(tx, KindEvent, topic, stored.MessageId, stored.Session, generation, payload);
            SaveLastMessageId(tx);
            tx.Commit();
            Account(payload.Length, drop);
            return (stored, rowId, drop);
        }
    }

    /// <summary>A message id for a message that is sent without being stored (an event while the store cannot write):
    /// from the same sequence of ids as the stored ones, so it is unique and in order with them.</summary>
    public string NewUnstoredMessageId() => _ids.Next(_time.GetUtcNow());

    /// <summary>Assigns the result its identity (message id, this session, the source's next seq), journals
    /// (source, fileKey) -> message id and queues it, in one transaction. When the key is already journalled, applies
    /// <paramref name="policy"/> (a skipped result takes no number). With a null/empty file key it only queues.</summary>
    public (JournalCommit Commit, CapDrop? Drop) CommitResult(string topic, ResultMessage message, string? fileKey,
        DuplicatePolicy policy, long generation)
    {
        ArgumentNullException.ThrowIfNull(message);
        var (commits, drop) = CommitResults([new ResultToCommit(topic, message, fileKey)], policy, generation);
        return (commits[0], drop);
    }

    /// <summary>Group commit: assigns identities, journals and queues every result in one transaction, so one fsync
    /// covers them all. All or nothing: when it throws (disk full, ...) none of them is stored and no seq was taken.
    /// Each result is judged as if committed alone in order: a file key repeated inside the batch is a duplicate of its
    /// first occurrence.</summary>
    public (IReadOnlyList<JournalCommit> Commits, CapDrop? Drop) CommitResults(IReadOnlyList<ResultToCommit> results, DuplicatePolicy policy, long generation)
    {
        ArgumentNullException.ThrowIfNull(results);
        lock (_gate)
        {
            ThrowIfDisposed();
            using var tx = _db.BeginTransaction();
            var commits = new List<JournalCommit>(results.Count);
            CapDrop? drops = null;
            // The in-memory depth/bytes follow each insert (the cap is checked per row); restored if the batch fails.
            var (depth, bytesHeld, capped) = (_depth, _bytes, _droppedByCap);
            try
            {
                foreach (var (topic, message, fileKey) in results)
                {
                    string? original = null;
                    if (!string.IsNullOrEmpty(fileKey))
                    {
                        original = LookupJournal(tx, message.Source, fileKey);
                        if (original is not null && policy == DuplicatePolicy.Skip)
                        {
                            commits.Add(new JournalCommit(CommitStatus.DuplicateSkipped, original, 0, original, 0));
                            continue;
                        }
                    }

                    var toStore = message with
                    {
                        MessageId = _ids.Next(_time.GetUtcNow()),
                        Session = Session,
                        Seq = NextSeq(tx, message.Source),
                        Duplicate = original is not null,
                        DuplicateOf = original,
                    };
                    var payload = MessageJson.Serialize(toStore);
                    var drop = MakeRoom(tx, payload.Length);
                    var rowId = Insert(tx, KindResult, topic, toStore.MessageId, Session, generation, payload);
                    Account(payload.Length, drop);
                    foreach (var feed in _feeds)
                    {
                        AppendToFeed(tx, feed.Key, feed.Value, payload);
                    }

                    drops = drop is null ? drops : new CapDrop((drops?.Dropped ?? 0) + drop.Dropped, (drops?.DroppedBytes ?? 0) + drop.DroppedBytes);
                    if (!string.IsNullOrEmpty(fileKey) && original is null)
                    {
                        using var j = _db.CreateCommand();
                        j.Transaction = tx;
                        j.CommandText = "INSERT INTO journal(source, file_key, message_id, committed_ms) VALUES ($s, $k, $m, $t)";
                        j.Parameters.AddWithValue("$s", message.Source);
                        j.Parameters.AddWithValue("$k", fileKey);
                        j.Parameters.AddWithValue("$m", toStore.MessageId);
                        j.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
                        j.ExecuteNonQuery();
                    }

                    commits.Add(new JournalCommit(original is null ? CommitStatus.Enqueued : CommitStatus.DuplicateEnqueued, toStore.MessageId,
                        toStore.Seq, original, rowId));
                }

                SaveLastMessageId(tx);
                tx.Commit();
            }
            catch
            {
                (_depth, _bytes, _droppedByCap) = (depth, bytesHeld, capped);
                RecountFeeds();
                throw;
            }

            return (commits, drops);
        }
    }

    /// <summary>The message id a (source, file key) was published under, or null when not journalled.</summary>
    public string? FindJournalled(string source, string fileKey)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            return LookupJournal(null, source, fileKey);
        }
    }

    /// <summary>Up to <paramref name="max"/> pending rows with a row id above <paramref name="afterRowId"/>, oldest first.</summary>
    public IReadOnlyList<OutboxRow> Peek(int max, long afterRowId = 0)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT seq, kind, topic, message_id, session, gen, enqueued_ms, payload FROM outbox WHERE seq > $a ORDER BY seq LIMIT $n";
            cmd.Parameters.AddWithValue("$a", afterRowId);
            cmd.Parameters.AddWithValue("$n", max);
            using var r = cmd.ExecuteReader();
            var rows = new List<OutboxRow>();
            while (r.Read())
            {
                rows.Add(new OutboxRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4),
                    r.GetInt64(5), r.GetInt64(6), (byte[])r[7]));
            }

            return rows;
        }
    }

    /// <summary>Deletes a row once the broker acknowledged it. Returns false when it was already gone (e.g.
    /// dropped by the cap meanwhile).</summary>
    public bool Remove(long seq)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "DELETE FROM outbox WHERE seq = $s RETURNING bytes";
            cmd.Parameters.AddWithValue("$s", seq);
            if (cmd.ExecuteScalar() is long bytes)
            {
                _depth--;
                _bytes -= bytes;
                return true;
            }

            return false;
        }
    }

    /// <summary>Deletes several acknowledged rows in one transaction (one fsync); returns how many were still there.</summary>
    public int RemoveMany(IReadOnlyCollection<long> seqs)
    {
        ArgumentNullException.ThrowIfNull(seqs);
        if (seqs.Count == 0)
        {
            return 0;
        }

        lock (_gate)
        {
            ThrowIfDisposed();
            using var tx = _db.BeginTransaction();
            using var cmd = _db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "DELETE FROM outbox WHERE seq = $s RETURNING bytes";
            var p = cmd.Parameters.Add("$s", SqliteType.Integer);
            var removed = 0;
            long bytes = 0;
            foreach (var seq in seqs)
            {
                p.Value = seq;
                if (cmd.ExecuteScalar() is long b)
                {
                    removed++;
                    bytes += b;
                }
            }

            tx.Commit();
            _depth -= removed;
            _bytes -= bytes;
            return removed;
        }
    }

    /// <summary>Up to <paramref name="max"/> results waiting in feed <paramref name="feed"/>, oldest first.</summary>
    public IReadOnlyList<FeedRow> PeekFeed(string feed, int max)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT seq, enqueued_ms, payload FROM feed WHERE name = $n ORDER BY seq LIMIT $max";
            cmd.Parameters.AddWithValue("$n", feed);
            cmd.Parameters.AddWithValue("$max", max);
            using var r = cmd.ExecuteReader();
            var rows = new List<FeedRow>();
            while (r.Read())
            {
                rows.Add(new FeedRow(r.GetInt64(0), r.GetInt64(1), (byte[])r[2]));
            }

            return rows;
        }
    }

    /// <summary>Deletes delivered rows of a feed in one transaction; returns how many were still there.</summary>
    public int RemoveFromFeed(string feed, IReadOnlyCollection<long> rowIds)
    {
        ArgumentNullException.ThrowIfNull(rowIds);
        lock (_gate)
        {
            ThrowIfDisposed();
            using var tx = _db.BeginTransaction();
            using var cmd = _db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "DELETE FROM feed WHERE seq = $s AND name = $n";
            cmd.Parameters.AddWithValue("$n", feed);
            var p = cmd.Parameters.Add("$s", SqliteType.Integer);
            var removed = 0;
            foreach (var id in rowIds)
            {
                p.Value = id;
                removed += cmd.ExecuteNonQuery();
            }

            tx.Commit();
            _feeds[feed].Depth -= removed;
            return removed;
        }
    }

    /// <summary>Results waiting in a feed, and how many the cap dropped from it since this instance opened.</summary>
    public (long Depth, long DroppedByCap) FeedStats(string feed)
    {
        lock (_gate)
        {
            var f = _feeds[feed];
            return (f.Depth, f.DroppedByCap);
        }
    }

    /// <summary>Advances a durable counter kept in this file (0, 1, ... <paramref name="modulo"/>-1, 0, ...) and
    /// returns its new value; the first call ever returns 0. On disk (fsync) before it returns.</summary>
    public long NextCounter(string key, long modulo)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(modulo, 1);
        lock (_gate)
        {
            ThrowIfDisposed();
            using var cmd = _db.CreateCommand();
            cmd.CommandText = """
                INSERT INTO meta(key, value) VALUES ($k, '0')
                ON CONFLICT(key) DO UPDATE SET value = CAST((CAST(value AS INTEGER) + 1) % $m AS TEXT)
                RETURNING CAST(value AS INTEGER)
                """;
            cmd.Parameters.AddWithValue("$k", "counter:" + key);
            cmd.Parameters.AddWithValue("$m", modulo);
            return (long)cmd.ExecuteScalar()!;
        }
    }

    /// <summary>Deletes journal entries committed before <paramref name="olderThan"/>, and the seq counters of other
    /// sessions not used since then; returns how many journal entries went.</summary>
    public int PruneJournal(DateTimeOffset olderThan)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            using (var seqs = _db.CreateCommand())
            {
                seqs.CommandText = "DELETE FROM result_seq WHERE session <> $s AND updated_ms < $t";
                seqs.Parameters.AddWithValue("$s", Session);
                seqs.Parameters.AddWithValue("$t", olderThan.ToUnixTimeMilliseconds());
                seqs.ExecuteNonQuery();
            }

            using var cmd = _db.CreateCommand();
            cmd.CommandText = "DELETE FROM journal WHERE committed_ms < $t";
            cmd.Parameters.AddWithValue("$t", olderThan.ToUnixTimeMilliseconds());
            return cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Number of journal entries.</summary>
    public long JournalCount
    {
        get
        {
            lock (_gate)
            {
                ThrowIfDisposed();
                using var cmd = _db.CreateCommand();
                cmd.CommandText = "SELECT COUNT(*) FROM journal";
                return (long)cmd.ExecuteScalar()!;
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _db.Dispose();
        }
    }

    private static SqliteConnection Open(string path)
    {
        // No pooling: a reopen after a crash must really reopen the file, and Dispose must really close it.
        var cs = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate }.ToString();
        var db = new SqliteConnection(cs);
        try
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = FULL;
                PRAGMA busy_timeout = 5000;
                CREATE TABLE IF NOT EXISTS outbox(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    session TEXT NOT NULL,
                    gen INTEGER NOT NULL,
                    enqueued_ms INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    payload BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS outbox_kind_seq ON outbox(kind, seq);
                CREATE TABLE IF NOT EXISTS journal(
                    source TEXT NOT NULL,
                    file_key TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    committed_ms INTEGER NOT NULL,
                    PRIMARY KEY(source, file_key)) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS journal_committed ON journal(committed_ms);
                CREATE TABLE IF NOT EXISTS result_seq(
                    session TEXT NOT NULL,
                    source TEXT NOT NULL,
                    last_seq INTEGER NOT NULL,
                    updated_ms INTEGER NOT NULL,
                    PRIMARY KEY(session, source)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS feed(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL,
                    enqueued_ms INTEGER NOT NULL,
                    payload BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS feed_name_seq ON feed(name, seq);
                PRAGMA user_version = 2;
                PRAGMA quick_check;
                """;
            cmd.ExecuteNonQuery();
            return db;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    private string? LookupJournal(SqliteTransaction? tx, string source, string fileKey)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT message_id FROM journal WHERE source = $s AND file_key = $k";
        cmd.Parameters.AddWithValue("$s", source);
        cmd.Parameters.AddWithValue("$k", fileKey);
        return cmd.ExecuteScalar() as string;
    }

    // The source's next seq in this session, taken inside the caller's transaction: a rollback gives the number back.
    private long NextSeq(SqliteTransaction tx, string source)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO result_seq(session, source, last_seq, updated_ms) VALUES ($s, $src, 1, $t)
            ON CONFLICT(session, source) DO UPDATE SET last_seq = last_seq + 1, updated_ms = $t
            RETURNING last_seq
            """;
        cmd.Parameters.AddWithValue("$s", Session);
        cmd.Parameters.AddWithValue("$src", source);
        cmd.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
        return (long)cmd.ExecuteScalar()!;
    }

    // Remembers the last message id, so ids keep increasing after a restart even when the clock stepped back.
    private void SaveLastMessageId(SqliteTransaction tx)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO meta(key, value) VALUES ('last_message_id', $v) ON CONFLICT(key) DO UPDATE SET value = $v";
        cmd.Parameters.AddWithValue("$v", _ids.Last);
        cmd.ExecuteNonQuery();
    }

    private long Insert(SqliteTransaction tx, string kind, string topic, string messageId, string session, long generation, byte[] payload)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO outbox(kind, topic, message_id, session, gen, enqueued_ms, bytes, payload)
            VALUES ($kind, $topic, $id, $session, $gen, $t, $bytes, $payload) RETURNING seq
            """;
        cmd.Parameters.AddWithValue("$kind", kind);
        cmd.Parameters.AddWithValue("$topic", topic);
        cmd.Parameters.AddWithValue("$id", messageId);
        cmd.Parameters.AddWithValue("$session", session);
        cmd.Parameters.AddWithValue("$gen", generation);
        cmd.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$bytes", payload.Length);
        cmd.Parameters.Add("$payload", SqliteType.Blob).Value = payload;
        return (long)cmd.ExecuteScalar()!;
    }

    // The cap policy: make room for one more message of `bytes` by dropping the oldest results, then (only if
    // no result is left) the oldest events. Status and model are never stored here, so they are never dropped.
    private CapDrop? MakeRoom(SqliteTransaction tx, int bytes)
    {
        if (bytes > _maxBytes)
        {
            throw new ArgumentException($"message of {bytes} bytes is larger than the outbox cap of {_maxBytes} bytes");
        }

        var needMessages = _depth + 1 - _maxMessages;
        var needBytes = _bytes + bytes - _maxBytes;
        if (needMessages <= 0 && needBytes <= 0)
        {
            return null;
        }

        var victims = new List<(long Seq, long Bytes)>();
        long freedBytes = 0;
        foreach (var kindFilter in new[] { "kind = 'result'", "kind <> 'result'" })
        {
            using var cmd = _db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"SELECT seq, bytes FROM outbox WHERE {kindFilter} ORDER BY seq";
            using var r = cmd.ExecuteReader();
            while ((victims.Count < needMessages || freedBytes < needBytes) && r.Read())
            {
                victims.Add((r.GetInt64(0), r.GetInt64(1)));
                freedBytes += r.GetInt64(1);
            }

            if (victims.Count >= needMessages && freedBytes >= needBytes)
            {
                break;
            }
        }

        using (var del = _db.CreateCommand())
        {
            del.Transaction = tx;
            del.CommandText = "DELETE FROM outbox WHERE seq = $s";
            var p = del.Parameters.Add("$s", SqliteType.Integer);
            foreach (var v in victims)
            {
                p.Value = v.Seq;
                del.ExecuteNonQuery();
            }
        }

        return new CapDrop(victims.Count, freedBytes);
    }

    // Queues a committed result for one feed, dropping that feed's oldest row when it is full.
    private void AppendToFeed(SqliteTransaction tx, string name, FeedCount count, byte[] payload)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.Parameters.AddWithValue("$n", name);
        if (count.Depth >= _maxMessages)
        {
            cmd.CommandText = "DELETE FROM feed WHERE seq = (SELECT MIN(seq) FROM feed WHERE name = $n)";
            count.Depth -= cmd.ExecuteNonQuery();
            count.DroppedByCap++;
        }

        cmd.CommandText = "INSERT INTO feed(name, enqueued_ms, payload) VALUES ($n, $t, $p)";
        cmd.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
        cmd.Parameters.Add("$p", SqliteType.Blob).Value = payload;
        cmd.ExecuteNonQuery();
        count.Depth++;
    }

    // After a rolled-back batch the in-memory feed counts are read back from the file.
    private void RecountFeeds()
    {
        foreach (var (name, count) in _feeds)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM feed WHERE name = $n";
            cmd.Parameters.AddWithValue("$n", name);
            count.Depth = (long)cmd.ExecuteScalar()!;
        }
    }

    private sealed class FeedCount
    {
        public long Depth;
        public long DroppedByCap;
    }

    private void Account(int addedBytes, CapDrop? drop)
    {
        _depth += 1 - (drop?.Dropped ?? 0);
        _bytes += addedBytes - (drop?.DroppedBytes ?? 0);
        _droppedByCap += drop?.Dropped ?? 0;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
