using System.Buffers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// The frozen caches of every decoder layer of a model after the prefill of a prompt prefix (one
/// <see cref="QuantizedKVCacheSnapshot"/> per layer), and their serialized form for a disk or distributed store.
/// </summary>
/// <remarks>
/// <para><b>Use.</b> After prefilling a prefix, <see cref="Create"/> snapshots every layer's cache; later,
/// <see cref="Fork"/> makes one request cache per layer that appends the request's own tokens. The quantized blocks are
/// shared, never copied per request (see <see cref="QuantizedKVCacheSnapshot"/> for the Reference profile's flush).</para>
/// <para><b>Serialized form.</b> <see cref="WriteTo(Stream, string, CancellationToken)"/> writes a versioned header
/// (magic, format version, the caller's key, every option that changes the stored bits, the type and shape of every
/// tensor), a checksum of the header, every tensor's raw bytes, and a checksum of everything (XxHash3, 64 bits).
/// <see cref="ReadFrom(Stream, string, KVCacheOptions, Device?, CancellationToken)"/> rebuilds the snapshot bit for
/// bit, or throws <see cref="InvalidSnapshotException"/> for a corrupt, truncated or foreign payload (other key,
/// format version or options) without leaving a tensor behind. The bytes are little-endian, as the tensors' memory.</para>
/// <para><b>Ownership and threads.</b> The snapshot owns its layer snapshots; their tensors live outside every
/// TorchSharp dispose scope, so the snapshot can be kept in a store and used later on any thread; dispose it to release
/// them. It is immutable: its members may be called from several threads at once, but not while
/// <see cref="Dispose"/> runs. Forks keep the shared blocks alive after the snapshot is disposed.</para>
/// </remarks>
public sealed class KVCacheSnapshot : IDisposable
{
    private readonly QuantizedKVCacheSnapshot[] _layers;
    private int _disposed;

    /// <summary>Takes ownership of the layer snapshots (all with equal options and length).</summary>
    internal KVCacheSnapshot(QuantizedKVCacheSnapshot[] layers)
    {
        _layers = layers;
        Options = layers[0].Options;
    }

    /// <summary>The options of every layer.</summary>
    public KVCacheOptions Options { get; }

    /// <summary>The per-layer snapshots, first decoder layer first (owned by this snapshot: do not dispose them).</summary>
    public IReadOnlyList<QuantizedKVCacheSnapshot> Layers => _layers;

    /// <summary>Cached tokens (the same in every layer).</summary>
    public long Length => _layers[0].Length;

    /// <summary>Bytes held, summed over layers, counted from the tensors.</summary>
    public CacheMemory Memory => _layers.Aggregate(default(CacheMemory), (sum, layer) => sum + layer.Memory);

    /// <summary>Snapshots every layer's cache (see <see cref="QuantizedKVCache.CreateSnapshot"/>).</summary>
    /// <param name="layers">One cache per decoder layer, all with equal options and the same number of tokens.</param>
    /// <returns>A snapshot the caller owns and must dispose.</returns>
    /// <exception cref="ArgumentException">No layers, or layers whose options or lengths differ.</exception>
    /// <exception cref="InvalidOperationException">The caches are empty.</exception>
    public static KVCacheSnapshot Create(IReadOnlyList<QuantizedKVCache> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0)
        {
            throw new ArgumentException("A snapshot needs at least one layer's cache.", nameof(layers));
        }

        for (int i = 0; i < layers.Count; i++)
        {
            ArgumentNullException.ThrowIfNull(layers[i], $"{nameof(layers)}[{i}]");
            if (!layers[i].Options.Equals(layers[0].Options) || layers[i].Length != layers[0].Length)
            {
                throw new ArgumentException(
                    $"Every layer's cache must have the options and length of layer 0 (preset '{layers[0].Options.Preset}', {layers[0].Length} tokens); layer {i} has preset '{layers[i].Options.Preset}' and {layers[i].Length} tokens.",
                    nameof(layers));
            }
        }

        var snapshots = new List<QuantizedKVCacheSnapshot>(layers.Count);
        try
        {
            foreach (var layer in layers)
            {
                snapshots.Add(layer.CreateSnapshot());
            }
        }
        catch
        {
            snapshots.ForEach(s => s.Dispose());
            throw;
        }

        return new KVCacheSnapshot(snapshots.ToArray());
    }

    /// <summary>One new request cache per layer, each forked from its layer's snapshot (see <see cref="QuantizedKVCacheSnapshot.Fork"/>).</summary>
    /// <returns>Caches the caller owns and must dispose, first decoder layer first.</returns>
    /// <exception cref="ObjectDisposedException">The snapshot was disposed.</exception>
    public QuantizedKVCache[] Fork()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var caches = new List<QuantizedKVCache>(_layers.Length);
        try
        {
            foreach (var layer in _layers)
            {
                caches.Add(layer.Fork());
            }
        }
        catch
        {
            caches.ForEach(c => c.Dispose());
            throw;
        }

        return caches.ToArray();
    }

    /// <summary>Writes the serialized snapshot (format in the remarks of <see cref="KVCacheSnapshot"/>).</summary>
    /// <param name="destination">Where to write; it is not flushed or closed.</param>
    /// <param name="key">The caller's key or fingerprint of the content; reading requires the same string.</param>
    /// <param name="cancellationToken">Checked between tensors.</param>
    /// <exception cref="ObjectDisposedException">The snapshot was disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the destination then holds an incomplete payload.</exception>
    public void WriteTo(Stream destination, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(key);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        KVCacheSnapshotFormat.Write(this, destination, key, cancellationToken);
    }

    /// <summary>Writes the serialized snapshot into a buffer writer (for example a distributed cache's serializer).</summary>
    /// <inheritdoc cref="WriteTo(Stream, string, CancellationToken)"/>
    public void WriteTo(IBufferWriter<byte> destination, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var stream = new BufferWriterStream(destination);
        WriteTo(stream, key, cancellationToken);
    }

    /// <summary>Reads a snapshot written by <see cref="WriteTo(Stream, string, CancellationToken)"/>.</summary>
    /// <param name="source">Read from its current position to the end of the payload (no further).</param>
    /// <param name="key">The key the snapshot must have been written with.</param>
    /// <param name="options">The options the snapshot must have been written with (every option that changes bits must
    /// match); the layers' caches use this instance.</param>
    /// <param name="device">Where to put the tensors; the CPU when <see langword="null"/>.</param>
    /// <param name="cancellationToken">Checked between tensors.</param>
    /// <returns>A snapshot the caller owns and must dispose.</returns>
    /// <exception cref="InvalidSnapshotException">The payload is corrupt, truncated, of another format version, or was
    /// written with another key or other options; nothing is left allocated.</exception>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; nothing is left allocated.</exception>
    public static KVCacheSnapshot ReadFrom(Stream source, string key, KVCacheOptions options, Device? device = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return KVCacheSnapshotFormat.Read(source, key, options, device, cancellationToken);
    }

    /// <summary>Reads a snapshot from bytes (for example a distributed cache's value).</summary>
    /// <inheritdoc cref="ReadFrom(Stream, string, KVCacheOptions, Device?, CancellationToken)"/>
    /// <exception cref="InvalidSnapshotException">As for a stream, and when bytes follow the payload.</exception>
    public static KVCacheSnapshot Read(ReadOnlySequence<byte> source, string key, KVCacheOptions options, Device? device = null, CancellationToken cancellationToken = default)
    {
        using var stream = new SequenceStream(source);
        var snapshot = ReadFrom(stream, key, options, device, cancellationToken);
        if (stream.Position != stream.Length)
        {
            snapshot.Dispose();
            throw new InvalidSnapshotException($"The KV cache snapshot is followed by {stream.Length - stream.Position} unexpected bytes.");
        }

        return snapshot;
    }

    /// <summary>Disposes every layer's snapshot; forks keep the shared blocks alive.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var layer in _layers)
        {
            layer.Dispose();
        }
    }
}
