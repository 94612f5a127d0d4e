using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>What an <see cref="Attention"/> module (and the block around it) reads in one forward pass.</summary>
/// <param name="Hidden">Input [B, T, D].</param>
internal sealed record AttentionInput(Tensor Hidden)
{
    /// <summary>Rotary tables for the T positions; <see langword="null"/> for none (vision towers with learned positions).</summary>
    public RotaryTables? Rotary { get; init; }

    /// <summary>Whether each query attends only to keys at or before its position.</summary>
    public bool Causal { get; init; }

    /// <summary>
    /// The layer's cache: empty at prefill (attention then uses the exact keys and values, and the cache is filled), else the
    /// new keys and values are appended and the queries attend over the whole compressed cache.
    /// </summary>
    public QuantizedKVCache? Cache { get; init; }

    /// <summary>Semantic token protection scores [T] or [B, T] for the prefill (NaN: may not be protected).</summary>
    public Tensor? Importance { get; init; }

    /// <summary>The layer's index in its stack.</summary>
    public int Layer { get; init; }

    /// <summary>A training hook; see <see cref="IDecoderHook"/>.</summary>
    public IDecoderHook? Hook { get; init; }
}
