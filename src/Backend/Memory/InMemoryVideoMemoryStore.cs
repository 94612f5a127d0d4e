using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Keeps snapshots in process memory, least recently used first out, under a byte budget counted from the tensors the
/// snapshots hold (<see cref="KVCacheSnapshot.Memory"/>).
/// </summary>
/// <remarks>
/// <para>Thread-safe: every member takes one lock; forks (shared blocks plus a copy of the small residual) are made under
/// it, so an entry is never disposed while it is forked. Evicted snapshots are disposed on the thread that evicts them
/// (their tensors live outside dispose scopes, so any thread may). Requests that forked an entry keep its blocks alive
/// after it is evicted.</para>
/// <para>Bytes are counted per entry: two entries of one video (the video alone, and a conversation about it) share
/// their quantized blocks but are both counted in full, so the budget is never exceeded.</para>
/// </remarks>
public sealed class InMemoryVideoMemoryStore : IVideoMemoryStore, IDisposable
{
    private readonly object _lock = new();
    private readonly Dictionary<VideoMemoryKey, LinkedListNode<Entry>> _entries = new();
    private readonly LinkedList<Entry> _order = new(); // most recently used first
    private long _bytes;
    private bool _disposed;

    /// <summary>Creates an empty store.</summary>
    /// <param name="budgetBytes">The most bytes the stored snapshots may hold together (at least 1).</param>
    /// <exception cref="ArgumentOutOfRangeException">The budget is not positive.</exception>
    public InMemoryVideoMemoryStore(long budgetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetBytes);
        BudgetBytes = budgetBytes;
    }

    /// <summary>The most bytes the stored snapshots may hold together.</summary>
    public long BudgetBytes { get; }

    /// <summary>Bytes the stored snapshots hold now.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Stored entries.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<VideoMemoryHit?> TryRestoreAsync(VideoMemoryKey key, KVCacheOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_entries.TryGetValue(key, out var node) || !node.Value.Snapshot.Options.Equals(options))
            {
                return ValueTask.FromResult<VideoMemoryHit?>(null);
            }

            _order.Remove(node);
            _order.AddFirst(node);
            return ValueTask.FromResult<VideoMemoryHit?>(new VideoMemoryHit(node.Value.Prefix, node.Value.Snapshot.Fork()));
        }
    }

    /// <inheritdoc />
    /// <remarks>A snapshot larger than the whole budget is not stored (it is disposed at once).</remarks>
    public ValueTask SaveAsync(VideoMemoryKey key, VideoMemoryPrefix prefix, KVCacheSnapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        try
        {
            ArgumentNullException.ThrowIfNull(key);
            ArgumentNullException.ThrowIfNull(prefix);
            cancellationToken.ThrowIfCancellationRequested();
            long bytes = snapshot.Memory.TotalBytes;
            var evicted = new List<KVCacheSnapshot>();
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_entries.Remove(key, out var old))
                {
                    Unlink(old, evicted);
                }

                if (bytes > BudgetBytes)
                {
                    evicted.Add(snapshot);
                }
                else
                {
                    while (_bytes + bytes > BudgetBytes && _order.Last is { } last)
                    {
                        _entries.Remove(last.Value.Key);
                        Unlink(last, evicted);
                    }

                    _entries[key] = _order.AddFirst(new Entry(key, prefix, snapshot, bytes));
                    _bytes += bytes;
                }

                evicted.ForEach(s => s.Dispose());
            }

            return ValueTask.CompletedTask;
        }
        catch
        {
            snapshot.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveAsync(VideoMemoryKey key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var removed = new List<KVCacheSnapshot>();
        lock (_lock)
        {
            if (_entries.Remove(key, out var node))
            {
                Unlink(node, removed);
            }

            removed.ForEach(s => s.Dispose());
        }

        return ValueTask.FromResult(removed.Count > 0);
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveMediaAsync(string mediaHash, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(mediaHash);
        var removed = new List<KVCacheSnapshot>();
        lock (_lock)
        {
            foreach (var node in _entries.Values.Where(n => n.Value.Key.Media.Contains(mediaHash, StringComparer.Ordinal)).ToList())
            {
                _entries.Remove(node.Value.Key);
                Unlink(node, removed);
            }

            removed.ForEach(s => s.Dispose());
        }

        return ValueTask.FromResult(removed.Count);
    }

    /// <summary>Disposes every stored snapshot; requests that forked them keep their blocks.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var entry in _order)
            {
                entry.Snapshot.Dispose();
            }

            _order.Clear();
            _entries.Clear();
            _bytes = 0;
        }
    }

    private void Unlink(LinkedListNode<Entry> node, List<KVCacheSnapshot> dispose)
    {
        _order.Remove(node);
        _bytes -= node.Value.Bytes;
        dispose.Add(node.Value.Snapshot);
    }

    private sealed record Entry(VideoMemoryKey Key, VideoMemoryPrefix Prefix, KVCacheSnapshot Snapshot, long Bytes);
}
