using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// An <see cref="IVideoMemoryStore"/> over bytes: each entry is serialized (a header with the key and the prefix layout,
/// checksummed, then the snapshot in <see cref="KVCacheSnapshot"/>'s versioned, checksummed format written with the same
/// key) into an <see cref="IVideoMemoryBlobStore"/>: a folder (<see cref="DiskVideoMemoryStore"/>) or a distributed cache.
/// </summary>
/// <remarks>
/// <para><b>Unusable entries.</b> An entry that is corrupt, truncated, of another format version, written for another
/// key or with other cache options, or that cannot be read, is a miss: the store logs a warning (event id 1,
/// <see cref="UnusableEntry"/> is raised too), removes the entry, and the model computes the prefix again. Nothing built
/// from a rejected entry is used, so a damaged entry never changes an answer.</para>
/// <para><b>Threads.</b> Thread-safe as its blob store is. <see cref="TryRestoreAsync"/> reads the snapshot on the
/// calling thread's dispose-scope-free tensors, forks it and disposes it there.</para>
/// </remarks>
public sealed class SerializedVideoMemoryStore : IVideoMemoryStore
{
    private readonly ILogger _logger;

    /// <summary>Creates the store.</summary>
    /// <param name="blobs">Where the bytes go.</param>
    /// <param name="logger">Receives a warning for every unusable entry; <see langword="null"/> for none.</param>
    /// <param name="device">Where read snapshots' tensors go; <see langword="null"/> for the CPU.</param>
    public SerializedVideoMemoryStore(IVideoMemoryBlobStore blobs, ILogger? logger = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        Blobs = blobs;
        _logger = logger ?? NullLogger.Instance;
        Device = device;
    }

    /// <summary>Raised (on the reading thread) with the key and the reason whenever an entry is unusable and ignored.</summary>
    public event Action<VideoMemoryKey, string>? UnusableEntry;

    /// <summary>The blob store.</summary>
    public IVideoMemoryBlobStore Blobs { get; }

    /// <summary>Where read snapshots' tensors go; <see langword="null"/> for the CPU.</summary>
    public Device? Device { get; }

    /// <inheritdoc />
    public async ValueTask<VideoMemoryHit?> TryRestoreAsync(VideoMemoryKey key, KVCacheOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        Stream? stream;
        try
        {
            stream = await Blobs.OpenReadAsync(key.Value, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            await Reject(key, e.Message, cancellationToken).ConfigureAwait(false);
            return null;
        }

        if (stream is null)
        {
            return null;
        }

        (VideoMemoryPrefix Prefix, KVCacheSnapshot Snapshot) entry;
        await using (stream.ConfigureAwait(false))
        {
            try
            {
                entry = VideoMemoryEntryFormat.Read(stream, key, options, Device, cancellationToken);
            }
            catch (Exception e) when (e is IOException or InvalidDataException) // InvalidSnapshotException and failed reads
            {
                await Reject(key, e.Message, cancellationToken).ConfigureAwait(false);
                return null;
            }
        }

        using (entry.Snapshot)
        {
            return new VideoMemoryHit(entry.Prefix, entry.Snapshot.Fork());
        }
    }

    /// <inheritdoc />
    public async ValueTask SaveAsync(VideoMemoryKey key, VideoMemoryPrefix prefix, KVCacheSnapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        byte[] bytes;
        using (snapshot)
        {
            ArgumentNullException.ThrowIfNull(key);
            ArgumentNullException.ThrowIfNull(prefix);
            bytes = VideoMemoryEntryFormat.Write(key, prefix, snapshot, cancellationToken);
        }

        await Blobs.WriteAsync(key.Value, bytes, key.Media, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveAsync(VideoMemoryKey key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Blobs.RemoveAsync(key.Value, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveMediaAsync(string mediaHash, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(mediaHash);
        return Blobs.RemoveByTagAsync(mediaHash, cancellationToken);
    }

    private async ValueTask Reject(VideoMemoryKey key, string reason, CancellationToken cancellationToken)
    {
        VideoMemoryLog.UnusableEntry(_logger, key.Value, reason);
        UnusableEntry?.Invoke(key, reason);
        try
        {
            await Blobs.RemoveAsync(key.Value, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            VideoMemoryLog.RemoveFailed(_logger, key.Value, e.Message);
        }
    }
}
