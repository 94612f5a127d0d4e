using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>Fused decode attention with chunked TorchSharp operations (any device).</summary>
internal static class ChunkedFusedAttention
{
    /// <summary>Tokens per chunk.</summary>
    public const int DefaultChunkTokens = 4096;

    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale, int chunkTokens)
        => throw new NotSupportedException("not yet");
}
