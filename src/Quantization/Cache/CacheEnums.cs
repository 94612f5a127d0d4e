namespace VidKV.AI.Quantization.Cache;

/// <summary>Fidelity profile: reproduce the released code, or store less.</summary>
public enum CacheProfile
{
    /// <summary>
    /// The released code's arithmetic and storage: full complex FFT keys, {0, s} signs, gamma 0.5, unscaled
    /// ternary packed in 2 bits, an fp16 scale and zero point with every group, re-quantize-all flush.
    /// </summary>
    Reference,

    /// <summary>
    /// This project's improvements: real-FFT keys (true 1 bit), base-3 ternary (1.6 bits), only the metadata a
    /// quantizer reads, append-only (streaming) flush.
    /// </summary>
    Compact,
}

/// <summary>What happens when the full-precision residual reaches its length.</summary>
public enum FlushPolicy
{
    /// <summary>Dequantize everything, append the residual, re-quantize all of it (the released code, HF QuantizedCache).</summary>
    RequantizeAll,

    /// <summary>Quantize the residual's full block and append it; older blocks stay untouched (KIVI).</summary>
    Streaming,
}

/// <summary>How values are stored.</summary>
public enum ValueQuantization
{
    /// <summary>Not quantized (the fp16 preset).</summary>
    None,

    /// <summary>Asymmetric <see cref="KVCacheOptions.ValueBits"/>-bit.</summary>
    Asymmetric,

    /// <summary>Ternary (1.58-bit).</summary>
    Ternary,

    /// <summary>Semantic token protection: protected tokens asymmetric, the rest ternary.</summary>
    Protected,
}
