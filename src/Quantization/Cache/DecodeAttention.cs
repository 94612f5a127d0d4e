namespace VidKV.AI.Quantization.Cache;

/// <summary>How decode-time attention reads a compressed cache.</summary>
public enum DecodeAttention
{
    /// <summary>
    /// <see cref="Fused"/> on the CPU (SIMD kernels) and on CUDA when its NVRTC kernels run (the CUDA driver and NVRTC
    /// found, at most 32 query heads per KV head; longer queries run in slices of tokens), where both beat the
    /// alternatives (docs/BENCHMARKS.md);
    /// <see cref="Dequantize"/> otherwise, where the fused path is a chain of small TorchSharp operations and measured slower.
    /// </summary>
    Auto,

    /// <summary>Straight from the packed codes (<see cref="QuantizedKVCache.AttendFused"/>): no full-precision copy.</summary>
    Fused,

    /// <summary>Dequantize the whole cache, then attend (<see cref="QuantizedKVCache.Attend"/>), as the released code does.</summary>
    Dequantize,
}
