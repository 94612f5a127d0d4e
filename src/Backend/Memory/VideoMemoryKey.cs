namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Names one stored prompt prefix: <see cref="Context"/> hashes everything that decides the cache's bits apart from the
/// prefix's tokens (model fingerprint, every <see cref="Quantization.Cache.KVCacheOptions"/> field, frame sampling, the
/// content hash of every media item), <see cref="Prefix"/> hashes the prefix's token ids before placeholder expansion
/// (one placeholder per media item: with the media hashes and the sampling they decide the expanded tokens).
/// </summary>
/// <param name="Context">128-bit hash (32 hex digits) of the model, cache options, sampling and media.</param>
/// <param name="Prefix">128-bit hash (32 hex digits) of the prefix's token ids before placeholder expansion.</param>
/// <param name="Media">Content hash of each media item in the prefix (videos, then images, in order); stores tag entries
/// with them so <see cref="IVideoMemoryStore.RemoveMediaAsync"/> can forget a video.</param>
public sealed record VideoMemoryKey(string Context, string Prefix, IReadOnlyList<string> Media)
{
    /// <summary>The key as one string: <c>{Context}-{Prefix}</c> (65 characters of [0-9a-f-], safe as a file name).</summary>
    public string Value => $"{Context}-{Prefix}";

    /// <inheritdoc />
    public override string ToString() => Value;

    /// <summary>Keys are equal when their <see cref="Value"/>s are (the media tags follow from the context).</summary>
    public bool Equals(VideoMemoryKey? other) => other is not null && Context == other.Context && Prefix == other.Prefix;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Context, Prefix);
}
