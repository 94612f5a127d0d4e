using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Models;

/// <summary>
/// One request's key-value cache: a <see cref="QuantizedKVCache"/> per decoder layer, all with the same options.
/// Not thread-safe; dispose it when the request ends to free its memory.
/// </summary>
public sealed class ModelKVCache : IDisposable
{
    private readonly QuantizedKVCache[] _layers;

    /// <summary>Creates an empty cache for <paramref name="layers"/> decoder layers.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the message names the value.</exception>
    public ModelKVCache(int layers, KVCacheOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _layers = new QuantizedKVCache[layers];
        for (int i = 0; i < layers; i++)
        {
            _layers[i] = new QuantizedKVCache(options);
        }
    }

    /// <summary>Takes ownership of one cache per decoder layer (forked from a snapshot), all with <paramref name="options"/>.</summary>
    internal ModelKVCache(QuantizedKVCache[] layers, KVCacheOptions options)
    {
        Options = options;
        _layers = layers;
    }

    /// <summary>The options every layer uses.</summary>
    public KVCacheOptions Options { get; }

    /// <summary>The per-layer caches.</summary>
    public IReadOnlyList<QuantizedKVCache> Layers => _layers;

    /// <summary>Cached tokens (the same in every layer).</summary>
    public long Length => _layers[0].Length;

    /// <summary>Bytes held, summed over layers.</summary>
    public CacheMemory Memory => _layers.Aggregate(default(CacheMemory), (sum, layer) => sum + layer.Memory);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var layer in _layers)
        {
            layer.Dispose();
        }
    }
}
