namespace VidKV.AI.Quantization.Cache;

/// <summary>How decode-time attention reads a compressed cache.</summary>
public enum DecodeAttention
{
    /// <summary>
    /// <see cref="Fused"/> on the CPU, where the SIMD kernels beat both alternatives; <see cref="Dequantize"/> on other
    /// devices, where the fused path is a chain of small TorchSharp operations and measured slower (docs/BENCHMARKS.md).
    /// </summary>
    Auto,

    /// <summary>Straight from the packed codes (<see cref="QuantizedKVCache.AttendFused"/>): no full-precision copy.</summary>
    Fused,

    /// <summary>Dequantize the whole cache, then attend (<see cref="QuantizedKVCache.Attend"/>), as the released code does.</summary>
    Dequantize,
}
