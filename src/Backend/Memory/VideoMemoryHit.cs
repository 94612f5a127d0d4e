using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A stored prefix found by <see cref="IVideoMemoryStore.TryRestoreAsync"/>: its layout and one request cache per decoder
/// layer, forked from the stored snapshot on the calling thread. The caller owns the caches: it adopts them (takes them
/// with <see cref="TakeCaches"/>) or disposes the hit.
/// </summary>
public sealed class VideoMemoryHit : IDisposable
{
    private QuantizedKVCache[]? _caches;

    /// <summary>Takes ownership of the forked caches.</summary>
    /// <exception cref="ArgumentException">There are no caches, or their lengths differ from the prefix's tokens.</exception>
    public VideoMemoryHit(VideoMemoryPrefix prefix, QuantizedKVCache[] caches)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(caches);
        if (caches.Length == 0 || caches.Any(c => c is null || c.Length != prefix.Ids.Count))
        {
            throw new ArgumentException($"A hit needs one cache per layer, each holding the prefix's {prefix.Ids.Count} tokens.", nameof(caches));
        }

        Prefix = prefix;
        _caches = caches;
    }

    /// <summary>The stored prefix's layout.</summary>
    public VideoMemoryPrefix Prefix { get; }

    /// <summary>Hands the caches over to the caller, who must dispose them; a later <see cref="Dispose"/> frees nothing.</summary>
    /// <exception cref="InvalidOperationException">They were taken already, or the hit was disposed.</exception>
    public QuantizedKVCache[] TakeCaches()
        => Interlocked.Exchange(ref _caches, null) ?? throw new InvalidOperationException("The caches of this hit were taken or disposed already.");

    /// <summary>Disposes the caches unless they were taken.</summary>
    public void Dispose()
    {
        foreach (var cache in Interlocked.Exchange(ref _caches, null) ?? Array.Empty<QuantizedKVCache>())
        {
            cache.Dispose();
        }
    }
}
