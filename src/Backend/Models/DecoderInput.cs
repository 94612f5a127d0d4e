using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models;

/// <summary>What a model's decoder reads in one forward pass.</summary>
/// <param name="Embeddings">Input embeddings [B, T, D] (text embeddings with visual features merged in).</param>
public sealed record DecoderInput(Tensor Embeddings)
{
    /// <summary>
    /// Position ids of the T inputs: [T] for 1-D rotary positions (a family with multimodal rotary positions may take more
    /// rows). <see langword="null"/>: consecutive positions from the cache's length (0 without a cache).
    /// </summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>The request's cache; <see langword="null"/> to run without one (training, scoring).</summary>
    public ModelKVCache? Cache { get; init; }

    /// <summary>Semantic token protection scores [T] or [B, T] for the prefill (NaN for tokens that may not be protected).</summary>
    public Tensor? Importance { get; init; }

    /// <summary>A training hook; <see langword="null"/> at inference.</summary>
    public IDecoderHook? Hook { get; init; }
}
