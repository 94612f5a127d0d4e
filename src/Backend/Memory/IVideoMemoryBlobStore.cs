namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Bytes in, bytes out: the seam for stores outside the process (a folder, a distributed cache). It knows nothing of
/// tensors or the entry format; <see cref="SerializedVideoMemoryStore"/> turns it into an <see cref="IVideoMemoryStore"/>
/// (serialization, checksums and key checks, warnings on unusable entries).
/// </summary>
/// <remarks>
/// Implementations must be thread-safe, and should be safe for several processes sharing the same place: a reader sees
/// either a whole value or none (write atomically). Values are tens of megabytes (a video's compressed cache); a store with
/// a value size limit must split them. Keys are 65 characters of [0-9a-f-]; tags are 32 hex digits.
/// </remarks>
public interface IVideoMemoryBlobStore
{
    /// <summary>Opens a stored value for reading.</summary>
    /// <returns>A stream positioned at the value's first byte and ending with its last (the caller disposes it), or
    /// <see langword="null"/> when there is no value for the key.</returns>
    /// <exception cref="IOException">The value exists but cannot be read (the caller treats it as a miss).</exception>
    ValueTask<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Stores a value, replacing any value of the key, with tags for <see cref="RemoveByTagAsync"/>.</summary>
    ValueTask WriteAsync(string key, ReadOnlyMemory<byte> value, IReadOnlyList<string> tags, CancellationToken cancellationToken = default);

    /// <summary>Removes a value.</summary>
    /// <returns>Whether one was removed.</returns>
    ValueTask<bool> RemoveAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Removes every value written with this tag.</summary>
    /// <returns>How many were removed (or -1 when the store cannot count them).</returns>
    ValueTask<int> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default);
}
