using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Mixed-precision keys of one block: outlier channels at b-bit per channel, easy channels at 1 bit, with the
/// channel split they were quantized under. Owns its tensors.
/// </summary>
internal sealed class QuantizedKeys : IDisposable
{
    internal QuantizedKeys(long[] shape, Tensor outlierChannels, Tensor easyChannels, QuantizedTensor? outliers, QuantizedTensor? easy)
    {
        Shape = shape;
        OutlierChannels = outlierChannels.DetachFromDisposeScope();
        EasyChannels = easyChannels.DetachFromDisposeScope();
        Outliers = outliers;
        Easy = easy;
    }

    /// <summary>Logical shape [B, H, N, D].</summary>
    public long[] Shape { get; }

    /// <summary>Ascending int64 indices of the outlier channels.</summary>
    public Tensor OutlierChannels { get; }

    /// <summary>Ascending int64 indices of the easy channels.</summary>
    public Tensor EasyChannels { get; }

    /// <summary>Outlier channels' codes, or <see langword="null"/> when there are none.</summary>
    public QuantizedTensor? Outliers { get; }

    /// <summary>Easy channels' 1-bit codes, or <see langword="null"/> when there are none.</summary>
    public QuantizedTensor? Easy { get; }

    /// <summary>Bytes of packed codes.</summary>
    public long CodeBytes => (Outliers?.CodeBytes ?? 0) + (Easy?.CodeBytes ?? 0);

    /// <summary>Bytes of scales and zero points.</summary>
    public long MetadataBytes => (Outliers?.MetadataBytes ?? 0) + (Easy?.MetadataBytes ?? 0);

    /// <summary>Bytes of the channel index lists.</summary>
    public long IndexBytes => QuantizedTensor.Bytes(OutlierChannels) + QuantizedTensor.Bytes(EasyChannels);

    /// <inheritdoc />
    public void Dispose()
    {
        OutlierChannels.Dispose();
        EasyChannels.Dispose();
        Outliers?.Dispose();
        Easy?.Dispose();
    }
}
