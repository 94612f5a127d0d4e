using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Where a model keeps the cache snapshots of prompt prefixes (a video and the text before it, or an earlier conversation)
/// so that later requests starting with the same prefix prefill only the rest.
/// </summary>
/// <remarks>
/// <para><b>Threads.</b> A model calls its stores from its one inference thread; a store may be shared by several models
/// (or processes, for stores over files or a distributed cache) and must be safe to call from several threads at once.
/// Tensors never cross a dispose scope: <see cref="TryRestoreAsync"/> forks on the calling thread and hands the forked
/// caches to the caller, and <see cref="SaveAsync"/> takes a snapshot whose tensors live outside every scope.</para>
/// <para><b>Misses.</b> A store answers a miss, never an error, for an entry it cannot use (corrupt, truncated, written by
/// other code or for another key): it logs a warning and drops the entry, and the model computes it again.</para>
/// <para>Implementations: <see cref="InMemoryVideoMemoryStore"/> (LRU under a byte budget, the default) and
/// <see cref="SerializedVideoMemoryStore"/> over any <see cref="IVideoMemoryBlobStore"/> (bytes in and out:
/// <see cref="DiskVideoMemoryStore"/>, or a distributed cache).</para>
/// </remarks>
public interface IVideoMemoryStore
{
    /// <summary>Finds a stored prefix and forks its snapshot into new request caches on the calling thread.</summary>
    /// <param name="key">The prefix's key.</param>
    /// <param name="options">The cache options of the request; an entry stored with other options is a miss.</param>
    /// <param name="cancellationToken">Cancels the lookup.</param>
    /// <returns>The hit (the caller owns it), or <see langword="null"/> on a miss.</returns>
    ValueTask<VideoMemoryHit?> TryRestoreAsync(VideoMemoryKey key, KVCacheOptions options, CancellationToken cancellationToken = default);

    /// <summary>Stores a prefix's snapshot, replacing an entry with the same key.</summary>
    /// <param name="key">The prefix's key.</param>
    /// <param name="prefix">The prefix's layout.</param>
    /// <param name="snapshot">The snapshot; the store takes ownership and disposes it (at once or when it evicts it),
    /// also when saving fails.</param>
    /// <param name="cancellationToken">Cancels the save (the entry is then not stored).</param>
    ValueTask SaveAsync(VideoMemoryKey key, VideoMemoryPrefix prefix, KVCacheSnapshot snapshot, CancellationToken cancellationToken = default);

    /// <summary>Removes one entry.</summary>
    /// <returns>Whether an entry was removed.</returns>
    ValueTask<bool> RemoveAsync(VideoMemoryKey key, CancellationToken cancellationToken = default);

    /// <summary>Removes every entry whose prefix holds the media item with this content hash (see <see cref="VideoMemoryKey.Media"/>).</summary>
    /// <returns>How many entries were removed.</returns>
    ValueTask<int> RemoveMediaAsync(string mediaHash, CancellationToken cancellationToken = default);
}
