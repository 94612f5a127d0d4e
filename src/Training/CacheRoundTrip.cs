using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

/// <summary>
/// Puts a quantized KV cache in the training loop: each layer's keys and values go through the cache (quantized in
/// whole groups, the last partial group kept in full precision, as a prefill leaves them) and back, and attention reads
/// the reconstruction. Gradients pass straight through the quantization (the reconstruction's error is a constant to
/// them), so the model learns keys and values that survive it.
/// </summary>
internal sealed class CacheRoundTrip
{
    /// <exception cref="ArgumentException">The options do not quantize or are not valid.</exception>
    public CacheRoundTrip(KVCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!options.IsQuantized)
        {
            throw new ArgumentException($"The cache preset '{options.Preset}' does not quantize; training with it in the loop would change nothing.", nameof(options));
        }

        Options = options;
    }

    /// <summary>The cache settings.</summary>
    public KVCacheOptions Options { get; }

    /// <summary>Keys and values [B, H, T, D] as the cache gives them back, with the gradient of the inputs.</summary>
    public (Tensor Keys, Tensor Values) Apply(int layer, Tensor keys, Tensor values)
    {
        using var scope = NewDisposeScope();
        Tensor keysBack, valuesBack;
        using (no_grad())
        {
            using var cache = new QuantizedKVCache(Options);
            cache.Prefill(keys.detach(), values.detach());
            (keysBack, valuesBack) = cache.GetKeysValues();
        }

        var k = Scalars.Add(keys, keysBack.to(keys.dtype).sub(keys.detach()));
        var v = Scalars.Add(values, valuesBack.to(values.dtype).sub(values.detach()));
        return (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }
}
