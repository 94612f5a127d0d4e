namespace VidKV.AI.Quantization.Cache;

/// <summary>How decode-time attention reads a compressed cache.</summary>
public enum DecodeAttention
{
    /// <summary>Straight from the packed codes (<see cref="QuantizedKVCache.AttendFused"/>): no full-precision copy.</summary>
    Fused,

    /// <summary>Dequantize the whole cache, then attend (<see cref="QuantizedKVCache.Attend"/>), as the released code does.</summary>
    Dequantize,
}
