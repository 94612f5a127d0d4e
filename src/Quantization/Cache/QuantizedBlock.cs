using VidKV.AI.Quantization.Quantizers;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// A run of consecutive cached tokens held in quantized form. Immutable once made: a cache never changes a block's
/// tensors, it only adds blocks or replaces them.
/// </summary>
/// <remarks>
/// A block may be shared read-only by a <see cref="QuantizedKVCacheSnapshot"/> and the caches forked from it. Each
/// owner holds one reference and gives it back once through <see cref="Dispose"/>; the tensors are freed when the last
/// owner does. The reference count is thread-safe, so owners on different threads may release in any order.
/// </remarks>
internal sealed class QuantizedBlock : IDisposable
{
    private int _owners = 1;

    internal QuantizedBlock(long start, QuantizedKeys keys, QuantizedValues values)
    {
        Start = start;
        Keys = keys;
        Values = values;
    }

    /// <summary>Position of the block's first token in the sequence.</summary>
    public long Start { get; }

    /// <summary>Number of tokens.</summary>
    public long Tokens => Keys.Shape[2];

    /// <summary>Quantized keys.</summary>
    public QuantizedKeys Keys { get; }

    /// <summary>Quantized values.</summary>
    public QuantizedValues Values { get; }

    /// <summary>Owners that have not released the block yet (0 once its tensors are freed).</summary>
    internal int Owners => Volatile.Read(ref _owners);

    /// <summary>Adds an owner: the block stays alive until that owner disposes it too.</summary>
    /// <exception cref="ObjectDisposedException">Every owner has released the block already.</exception>
    internal QuantizedBlock Share()
    {
        int owners;
        do
        {
            owners = Volatile.Read(ref _owners);
            ObjectDisposedException.ThrowIf(owners <= 0, this);
        }
        while (Interlocked.CompareExchange(ref _owners, owners + 1, owners) != owners);

        return this;
    }

    /// <summary>Releases the caller's reference; the last owner to release frees the tensors.</summary>
    public void Dispose()
    {
        int owners = Interlocked.Decrement(ref _owners);
        if (owners == 0)
        {
            Keys.Dispose();
            Values.Dispose();
        }
        else if (owners < 0)
        {
            // Released more often than shared: the tensors are gone already.
            Interlocked.Exchange(ref _owners, 0);
        }
    }
}
