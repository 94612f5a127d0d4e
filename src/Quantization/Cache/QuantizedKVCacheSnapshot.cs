using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// The frozen content of one layer's <see cref="QuantizedKVCache"/> (made by <see cref="QuantizedKVCache.CreateSnapshot"/>),
/// from which <see cref="Fork"/> makes request caches that go on from where the snapshot was taken.
/// </summary>
/// <remarks>
/// <para><b>Sharing.</b> The quantized blocks are shared read-only by the snapshot and every cache forked from it,
/// never copied per request: each holds a reference and the blocks' tensors are freed when the last holder lets go.
/// The private tail (full-precision residual keys and values, retained importance scores) is copied at every fork.
/// With the <see cref="FlushPolicy.Streaming"/> flush (Compact profile) a fork keeps sharing the snapshot's blocks for
/// its whole life and adds its own. With <see cref="FlushPolicy.RequantizeAll"/> (Reference profile, the released
/// code's arithmetic) a fork shares them until its first flush, which re-quantizes every token into a new block of
/// its own: sharing is impossible from then on, and the fork holds a private copy of the whole cache.</para>
/// <para><b>Exactness.</b> A fork holds the same tensors, bit for bit, as the cache held when the snapshot was made,
/// so it gives exactly the results that cache would have given for the same appended tokens.</para>
/// <para><b>Ownership and threads.</b> The snapshot owns its tensors outside every TorchSharp dispose scope, so it can
/// be kept past the scope, request and thread that made it and used later on the same or another thread; dispose it
/// to release its references. It is immutable: <see cref="Fork"/>, <see cref="Memory"/> and the other members may be
/// called from several threads at once, but not while <see cref="Dispose"/> runs. Disposing it while forks live is
/// safe: they keep the shared blocks alive.</para>
/// </remarks>
public sealed class QuantizedKVCacheSnapshot : IDisposable
{
    private readonly QuantizedBlock[] _blocks;
    private readonly Tensor? _residualKeys;
    private readonly Tensor? _residualValues;
    private readonly Tensor? _scores;
    private int _disposed;

    /// <summary>Takes ownership of references to the blocks and of the tensors, all outside dispose scopes.</summary>
    internal QuantizedKVCacheSnapshot(KVCacheOptions options, CacheShape shape, QuantizedBlock[] blocks, Tensor? residualKeys, Tensor? residualValues, Tensor? scores, int flushCount)
    {
        Options = options;
        Shape = shape;
        _blocks = blocks;
        _residualKeys = residualKeys;
        _residualValues = residualValues;
        _scores = scores;
        FlushCount = flushCount;
    }

    /// <summary>The options of the cache the snapshot was taken from; forks use them.</summary>
    public KVCacheOptions Options { get; }

    /// <summary>Cached tokens.</summary>
    public long Length => QuantizedLength + ResidualLength;

    /// <summary>Tokens held in quantized (shared) blocks.</summary>
    public long QuantizedLength => _blocks.Sum(b => b.Tokens);

    /// <summary>Tokens held in the full-precision residual (copied at every fork).</summary>
    public long ResidualLength => _residualKeys?.size(2) ?? 0;

    /// <summary>How many times the cache had flushed its residual when the snapshot was taken.</summary>
    public int FlushCount { get; }

    /// <summary>The type keys and values arrived in, and are returned in.</summary>
    public ScalarType DType => Shape.DType;

    /// <summary>Bytes the snapshot holds, by kind, counted from its tensors (shared blocks included).</summary>
    public CacheMemory Memory => QuantizedKVCache.Measure(_blocks, _residualKeys, _residualValues, _scores, Shape);

    internal CacheShape Shape { get; }

    internal IReadOnlyList<QuantizedBlock> Blocks => _blocks;

    internal Tensor? ResidualKeys => _residualKeys;

    internal Tensor? ResidualValues => _residualValues;

    internal Tensor? RetainedScores => _scores;

    /// <summary>
    /// A new cache with the snapshot's content that appends its own tokens: the blocks are shared, the residual and
    /// scores copied (fewer than <see cref="KVCacheOptions.ResidualLength"/> tokens; with the fp16 preset, which
    /// quantizes nothing, the residual is the whole cache, so a fork copies it all).
    /// </summary>
    /// <returns>A cache the caller owns and must dispose; disposing it never frees the shared blocks.</returns>
    /// <exception cref="ObjectDisposedException">The snapshot was disposed.</exception>
    public QuantizedKVCache Fork()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var cache = new QuantizedKVCache(Options);
        try
        {
            cache.Restore(this);
            return cache;
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    /// <summary>Releases the snapshot's references to the shared blocks and frees its copied tensors.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var b in _blocks)
        {
            b.Dispose();
        }

        _residualKeys?.Dispose();
        _residualValues?.Dispose();
        _scores?.Dispose();
    }
}
