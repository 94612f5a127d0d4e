using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// VidKV's mixed-precision keys: of D channels, the <c>floor(D·(kBits - 1))</c> with the largest statistic get
/// b-bit asymmetric per-channel quantization, the rest 1 bit (FFT, real FFT or time-domain). kBits is 1.25, 1.5,
/// 1.75 or 2 (all channels b-bit), or 1 (all channels 1 bit).
/// </summary>
internal sealed class MixedPrecisionKeyQuantizer
{
    /// <summary>The key bit widths the method defines.</summary>
    public static readonly IReadOnlyList<double> AllowedKeyBits = new[] { 1.0, 1.25, 1.5, 1.75, 2.0 };

    private readonly AsymmetricQuantizer _outlier;
    private readonly OneBitKeyQuantizer _oneBit;
    private readonly KeyChannelSelector _selector;

    /// <summary>Creates the quantizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="keyBits"/> is not one of <see cref="AllowedKeyBits"/>.</exception>
    public MixedPrecisionKeyQuantizer(double keyBits, AsymmetricQuantizer outlier, OneBitKeyQuantizer oneBit, KeyChannelSelector selector)
    {
        ArgumentNullException.ThrowIfNull(outlier);
        ArgumentNullException.ThrowIfNull(oneBit);
        ArgumentNullException.ThrowIfNull(selector);
        if (!AllowedKeyBits.Contains(keyBits))
        {
            throw new ArgumentOutOfRangeException(nameof(keyBits), keyBits, "Key bits must be 1, 1.25, 1.5, 1.75 or 2.");
        }

        if (outlier.Axis != QuantizationAxis.PerChannel)
        {
            throw new ArgumentException("Outlier key channels are quantized per channel.", nameof(outlier));
        }

        KeyBits = keyBits;
        _outlier = outlier;
        _oneBit = oneBit;
        _selector = selector;
    }

    /// <summary>Average nominal bits per key element (before metadata).</summary>
    public double KeyBits { get; }

    /// <summary>How many of <paramref name="channels"/> channels get the b-bit quantizer.</summary>
    public int OutlierCount(long channels) => (int)Math.Floor((channels * (KeyBits - 1.0)) + 1e-9);

    /// <summary>Quantizes keys [B, H, N, D]; N must be a whole number of groups.</summary>
    public QuantizedKeys Quantize(Tensor keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        using var scope = NewDisposeScope();
        var (outIdx, easyIdx) = _selector.Select(keys, OutlierCount(keys.shape[^1]));
        var outliers = outIdx.numel() > 0 ? _outlier.Quantize(keys.index_select(-1, outIdx)) : null;
        var easy = easyIdx.numel() > 0 ? _oneBit.Quantize(keys.index_select(-1, easyIdx)) : null;
        return new QuantizedKeys(keys.shape, outIdx, easyIdx, outliers, easy);
    }

    /// <summary>Reconstructs float32 keys [B, H, N, D].</summary>
    public Tensor Dequantize(QuantizedKeys q)
    {
        ArgumentNullException.ThrowIfNull(q);
        using var scope = NewDisposeScope();
        var result = zeros(q.Shape, ScalarType.Float32, q.OutlierChannels.device);
        if (q.Outliers is not null)
        {
            result.index_copy_(-1, q.OutlierChannels, _outlier.Dequantize(q.Outliers));
        }

        if (q.Easy is not null)
        {
            result.index_copy_(-1, q.EasyChannels, _oneBit.Dequantize(q.Easy, q.EasyChannels.shape[0]));
        }

        return result.MoveToOuterDisposeScope();
    }
}
