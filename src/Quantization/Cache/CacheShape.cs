using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>The geometry of one layer's cache: [B, H_kv, N, D] keys and [B, H_kv, N, Dv] values of one type.</summary>
/// <param name="Batch">B.</param>
/// <param name="Heads">H_kv, the key-value heads.</param>
/// <param name="KeyDim">D.</param>
/// <param name="ValueDim">Dv.</param>
/// <param name="DType">The type keys and values arrived in.</param>
internal readonly record struct CacheShape(long Batch, long Heads, long KeyDim, long ValueDim, ScalarType DType)
{
    /// <summary>Key plus value elements per token.</summary>
    public long ElementsPerToken => Batch * Heads * (KeyDim + ValueDim);
}
