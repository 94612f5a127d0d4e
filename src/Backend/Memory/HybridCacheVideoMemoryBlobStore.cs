using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Extensions.Caching.Hybrid;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// The video memory shared between processes and machines through <see cref="HybridCache"/> (an in-process L1 and any
/// <c>IDistributedCache</c>, such as Redis, as L2): a bytes store for <see cref="SerializedVideoMemoryStore"/>
/// (<c>new SerializedVideoMemoryStore(new HybridCacheVideoMemoryBlobStore(hybridCache))</c> as
/// <see cref="VideoMemoryOptions.SharedStore"/>). A payload is stored as a small manifest under
/// its key and chunks under "key:i", so no entry exceeds <see cref="ChunkBytes"/> (HybridCache refuses entries larger than
/// its <c>MaximumPayloadBytes</c>, Redis values larger than 512 MB). A payload whose chunks are missing (evicted) or do not
/// match the manifest's length and checksum reads as absent, so the caller computes it again: never a wrong payload.
/// </summary>
/// <remarks>Thread-safe, as <see cref="HybridCache"/> is.</remarks>
public sealed class HybridCacheVideoMemoryBlobStore : IVideoMemoryBlobStore
{
    private const uint Magic = 0x4D564B56; // "VKVM"
    private const int Version = 1;
    private const int ManifestBytes = 4 + 4 + 8 + 4 + 4 + 8;
    private static readonly HybridCacheEntryOptions ReadOnly = new()
    {
        Flags = HybridCacheEntryFlags.DisableLocalCacheWrite | HybridCacheEntryFlags.DisableDistributedCacheWrite,
    };

    private readonly HybridCache _cache;
    private readonly HybridCacheEntryOptions? _write;

    /// <param name="cache">The cache (register one with <c>services.AddHybridCache()</c> and an <c>IDistributedCache</c>).</param>
    /// <param name="chunkBytes">Largest entry written; at most the cache's <c>MaximumPayloadBytes</c> (1 MiB by default).</param>
    /// <param name="expiration">How long entries live; <see langword="null"/> for the cache's default.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkBytes"/> is below 4 KiB.</exception>
    public HybridCacheVideoMemoryBlobStore(HybridCache cache, int chunkBytes = 1_000_000, TimeSpan? expiration = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 4096);
        _cache = cache;
        ChunkBytes = chunkBytes;
        _write = expiration is { } e ? new HybridCacheEntryOptions { Expiration = e, LocalCacheExpiration = e } : null;
    }

    /// <summary>Largest entry written.</summary>
    public int ChunkBytes { get; }

    /// <summary>The payload stored under <paramref name="key"/>, or <see langword="null"/> when it is absent or incomplete.</summary>
    public async ValueTask<byte[]?> TryGetAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var manifest = await ReadEntry(key, cancellationToken).ConfigureAwait(false);
        if (manifest is null || !TryParse(manifest, out long length, out int chunks, out int chunkBytes, out ulong hash)
            || length > (long)chunks * chunkBytes || length > Array.MaxLength)
        {
            return null;
        }

        var payload = new byte[length];
        long offset = 0;
        for (int i = 0; i < chunks; i++)
        {
            var chunk = await ReadEntry(ChunkKey(key, i), cancellationToken).ConfigureAwait(false);
            long expected = Math.Min(chunkBytes, length - offset);
            if (chunk is null || chunk.Length != expected)
            {
                return null;
            }

            chunk.CopyTo(payload, offset);
            offset += chunk.Length;
        }

        return offset == length && XxHash3.HashToUInt64(payload) == hash ? payload : null;
    }

    /// <summary>Stores <paramref name="payload"/> under <paramref name="key"/> (chunks first, the manifest last, tagged).</summary>
    public async ValueTask SetAsync(string key, ReadOnlyMemory<byte> payload, IReadOnlyList<string>? tags = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        int chunks = (int)((payload.Length + (long)ChunkBytes - 1) / ChunkBytes);
        for (int i = 0; i < chunks; i++)
        {
            var chunk = payload.Slice(i * ChunkBytes, Math.Min(ChunkBytes, payload.Length - (i * ChunkBytes))).ToArray();
            await _cache.SetAsync(ChunkKey(key, i), chunk, _write, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        var manifest = new byte[ManifestBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(manifest, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(manifest.AsSpan(4), Version);
        BinaryPrimitives.WriteInt64LittleEndian(manifest.AsSpan(8), payload.Length);
        BinaryPrimitives.WriteInt32LittleEndian(manifest.AsSpan(16), chunks);
        BinaryPrimitives.WriteInt32LittleEndian(manifest.AsSpan(20), ChunkBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(manifest.AsSpan(24), XxHash3.HashToUInt64(payload.Span));
        await _cache.SetAsync(key, manifest, _write, tags, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default)
        => await TryGetAsync(key, cancellationToken).ConfigureAwait(false) is { } payload ? new MemoryStream(payload, writable: false) : null;

    /// <inheritdoc />
    public ValueTask WriteAsync(string key, ReadOnlyMemory<byte> value, IReadOnlyList<string> tags, CancellationToken cancellationToken = default)
        => SetAsync(key, value, tags, cancellationToken);

    /// <inheritdoc />
    /// <remarks>Removes the manifest; the chunks are then unreachable and expire.</remarks>
    public async ValueTask<bool> RemoveAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        bool existed = await ReadEntry(key, cancellationToken).ConfigureAwait(false) is not null;
        await _cache.RemoveAsync(key, cancellationToken).ConfigureAwait(false);
        return existed;
    }

    /// <inheritdoc />
    /// <remarks>HybridCache invalidates tagged entries without counting them: returns -1.</remarks>
    public async ValueTask<int> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        await _cache.RemoveByTagAsync(tag, cancellationToken).ConfigureAwait(false);
        return -1;
    }

    private static string ChunkKey(string key, int index) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{key}:{index}");

    private ValueTask<byte[]?> ReadEntry(string key, CancellationToken cancellationToken)
        => _cache.GetOrCreateAsync<byte[]?>(key, static _ => ValueTask.FromResult<byte[]?>(null), ReadOnly, cancellationToken: cancellationToken);

    private static bool TryParse(byte[] manifest, out long length, out int chunks, out int chunkBytes, out ulong hash)
    {
        length = 0;
        chunks = chunkBytes = 0;
        hash = 0;
        if (manifest.Length != ManifestBytes || BinaryPrimitives.ReadUInt32LittleEndian(manifest) != Magic
            || BinaryPrimitives.ReadInt32LittleEndian(manifest.AsSpan(4)) != Version)
        {
            return false;
        }

        length = BinaryPrimitives.ReadInt64LittleEndian(manifest.AsSpan(8));
        chunks = BinaryPrimitives.ReadInt32LittleEndian(manifest.AsSpan(16));
        chunkBytes = BinaryPrimitives.ReadInt32LittleEndian(manifest.AsSpan(20));
        hash = BinaryPrimitives.ReadUInt64LittleEndian(manifest.AsSpan(24));
        return length >= 0 && chunks >= 0 && chunkBytes > 0;
    }
}
