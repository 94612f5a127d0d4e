namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// Bytes actually held by a cache's tensors, by kind, and the element counts they hold. Bits per element are
/// derived from these bytes, never from nominal widths. Summable across layers with <c>+</c>.
/// </summary>
/// <param name="CodeBytes">Packed codes.</param>
/// <param name="MetadataBytes">Scales and zero points.</param>
/// <param name="IndexBytes">Channel splits, protected positions and retained importance scores.</param>
/// <param name="ResidualBytes">Unquantized tokens (the residual, or the whole cache without quantization).</param>
/// <param name="QuantizedElements">Key plus value elements held in quantized form.</param>
/// <param name="ResidualElements">Key plus value elements held unquantized.</param>
public readonly record struct CacheMemory(long CodeBytes, long MetadataBytes, long IndexBytes, long ResidualBytes, long QuantizedElements, long ResidualElements)
{
    /// <summary>Bytes of the quantized part: codes, metadata and indices.</summary>
    public long QuantizedBytes => CodeBytes + MetadataBytes + IndexBytes;

    /// <summary>Every byte held.</summary>
    public long TotalBytes => QuantizedBytes + ResidualBytes;

    /// <summary>Key plus value elements held.</summary>
    public long Elements => QuantizedElements + ResidualElements;

    /// <summary>Bits per element of the quantized part, metadata and indices included (0 when nothing is quantized).</summary>
    public double QuantizedBitsPerElement => QuantizedElements == 0 ? 0 : 8.0 * QuantizedBytes / QuantizedElements;

    /// <summary>Bits per element over everything held, residual included.</summary>
    public double BitsPerElement => Elements == 0 ? 0 : 8.0 * TotalBytes / Elements;

    /// <summary>Bytes an fp16 cache of the same elements would hold.</summary>
    public long Fp16Bytes => 2 * Elements;

    /// <summary><see cref="TotalBytes"/> over <see cref="Fp16Bytes"/>.</summary>
    public double RatioToFp16 => Elements == 0 ? 0 : (double)TotalBytes / Fp16Bytes;

    /// <summary>Sums two accounts (e.g. two layers).</summary>
    public static CacheMemory operator +(CacheMemory a, CacheMemory b) => new(
        a.CodeBytes + b.CodeBytes, a.MetadataBytes + b.MetadataBytes, a.IndexBytes + b.IndexBytes,
        a.ResidualBytes + b.ResidualBytes, a.QuantizedElements + b.QuantizedElements, a.ResidualElements + b.ResidualElements);
}
