namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// A serialized <see cref="KVCacheSnapshot"/> cannot be used: it is corrupt or truncated, of another format version,
/// or was written for another key or with other cache options. The message says which. A store that gets this
/// exception should drop the entry and compute the snapshot again.
/// </summary>
/// <remarks>An <see cref="IOException"/> (<see cref="InvalidDataException"/> is sealed), so a store that already treats
/// failed reads as misses handles it the same way.</remarks>
public sealed class InvalidSnapshotException : IOException
{
    /// <summary>Creates the exception with a message.</summary>
    public InvalidSnapshotException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the exception that revealed the problem.</summary>
    public InvalidSnapshotException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a generic message.</summary>
    public InvalidSnapshotException()
        : base("The KV cache snapshot is invalid.")
    {
    }
}
