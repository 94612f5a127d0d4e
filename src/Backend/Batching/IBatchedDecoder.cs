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
    /// caller's dispose scope. With <paramref name="rowWise"/>, row i is bitwise what a one-sequence step over the same cache
    /// gives: the matrix products run once per row, because BLAS (MKL on CPU, cuBLAS) picks other kernels, and so other
    /// last bits, for N rows than for one. Without it they run once over the N rows (faster; equal to about 1e-6).
    /// </summary>
    Tensor ForwardDecodeBatch(Tensor embeddings, IReadOnlyList<Tensor?> positionIds, IReadOnlyList<ModelKVCache> caches, bool rowWise);
}
