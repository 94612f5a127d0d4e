using VidKV.AI.Backend.Models;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Batching;

/// <summary>A decoder that advances several sequences, each over its own cache, by one token in one pass.</summary>
internal interface IBatchedDecoder
{
    /// <summary>
    /// Runs one decode step: <paramref name="embeddings"/> [N, 1, D] holds each sequence's new token; sequence i sits at
    /// <paramref name="positionIds"/>[i] ([1], or <see langword="null"/> for its cache's length) and appends to and attends
    /// over <paramref name="caches"/>[i], which must be prefilled. Returns the final-normed hidden states [N, 1, D] in the
    /// caller's dispose scope. Row i equals what a one-sequence step over the same cache gives.
    /// </summary>
    Tensor ForwardDecodeBatch(Tensor embeddings, IReadOnlyList<Tensor?> positionIds, IReadOnlyList<ModelKVCache> caches);
}
