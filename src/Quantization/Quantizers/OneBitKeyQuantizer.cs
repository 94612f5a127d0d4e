using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>How the easy (non-outlier) key channels are stored at 1 bit.</summary>
public enum OneBitKeyMode
{
    /// <summary>
    /// Full complex FFT along the channels, real and imaginary parts interleaved (2·De reals per token), each
    /// sign-quantized per channel: what the released code does; really 2 bits per key element.
    /// </summary>
    Fft,

    /// <summary>Real FFT: exactly De independent reals per token (true 1 bit per element).</summary>
    Rfft,

    /// <summary>Plain sign 1-bit on the channel values themselves (the paper's 1.25-bit setting).</summary>
    TimeDomain,
}

/// <summary>
/// 1-bit quantization of the easy key channels ([..., tokens, De]): optionally moved to the frequency domain
/// along the channel axis, then sign-quantized per channel (groups of G tokens of one component).
/// </summary>
internal sealed class OneBitKeyQuantizer
{
    private readonly SignQuantizer _sign;

    /// <summary>Creates the quantizer.</summary>
    public OneBitKeyQuantizer(OneBitKeyMode mode, SignQuantizer sign)
    {
        ArgumentNullException.ThrowIfNull(sign);
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Allowed: Fft, Rfft, TimeDomain.");
        }

        if (sign.Axis != QuantizationAxis.PerChannel)
        {
            throw new ArgumentException("Key components are quantized per channel.", nameof(sign));
        }

        Mode = mode;
        _sign = sign;
    }

    private long ChunkLength => Math.Max(1, TensorQuantizer.ChunkTokens / _sign.GroupSize) * _sign.GroupSize;

    /// <summary>Transform applied before the sign quantizer.</summary>
    public OneBitKeyMode Mode { get; }

    /// <summary>Number of stored real components per token for <paramref name="channels"/> easy channels.</summary>
    public static long ComponentCount(OneBitKeyMode mode, long channels) => mode == OneBitKeyMode.Fft ? 2 * channels : channels;

    /// <summary>Quantizes the easy channels; the result's last dimension holds the stored components.</summary>
    public QuantizedTensor Quantize(Tensor easy)
    {
        ArgumentNullException.ThrowIfNull(easy);
        return TokenChunks.Quantize(easy, ChunkLength, chunk =>
        {
            using var scope = NewDisposeScope();
            return _sign.Quantize(ToComponents(chunk.to(ScalarType.Float32), Mode));
        }, 1.0 / _sign.GroupSize);
    }

    /// <summary>Reconstructs the easy channels (float32, [..., tokens, De]).</summary>
    public Tensor Dequantize(QuantizedTensor q, long channels)
    {
        ArgumentNullException.ThrowIfNull(q);
        return TokenChunks.Dequantize(q, ChunkLength, chunk =>
        {
            using var scope = NewDisposeScope();
            return FromComponents(_sign.Dequantize(chunk), Mode, channels).MoveToOuterDisposeScope();
        }, 1.0 / _sign.GroupSize);
    }

    /// <summary>Maps channel values to the real components that are quantized.</summary>
    public static Tensor ToComponents(Tensor x, OneBitKeyMode mode)
    {
        long de = x.shape[^1];
        switch (mode)
        {
            case OneBitKeyMode.Fft:
            {
                // [..., De] complex -> [..., De, 2] -> [..., 2De]: re0, im0, re1, im1, ...
                var spectrum = fft.fft_(x, -1, -1);
                return view_as_real(spectrum).reshape(x.shape[..^1].Append(2 * de).ToArray());
            }

            case OneBitKeyMode.Rfft:
            {
                // Bins 0..De/2; the imaginary parts of bin 0 (and of bin De/2 when De is even) are always zero.
                var spectrum = fft.rfft(x, -1, -1);
                long bins = spectrum.shape[^1];
                long imagCount = bins - 1 - (de % 2 == 0 ? 1 : 0);
                var re = spectrum.real;
                var im = spectrum.imag.narrow(-1, 1, imagCount);
                return cat(new[] { re, im }, -1);
            }

            default:
                return x;
        }
    }

    /// <summary>Inverse of <see cref="ToComponents"/>.</summary>
    public static Tensor FromComponents(Tensor c, OneBitKeyMode mode, long channels)
    {
        switch (mode)
        {
            case OneBitKeyMode.Fft:
            {
                var pairs = c.reshape(c.shape[..^1].Append(channels).Append(2L).ToArray()).contiguous();
                return fft.ifft(view_as_complex(pairs), -1, -1).real;
            }

            case OneBitKeyMode.Rfft:
            {
                long bins = (channels / 2) + 1;
                long imagCount = bins - 1 - (channels % 2 == 0 ? 1 : 0);
                var re = c.narrow(-1, 0, bins);
                var lead = c.shape[..^1];
                var im = cat(new[]
                {
                    zeros(lead.Append(1L).ToArray(), c.dtype, c.device),
                    c.narrow(-1, bins, imagCount),
                    zeros(lead.Append(bins - 1 - imagCount).ToArray(), c.dtype, c.device),
                }, -1);
                return fft.irfft(complex(re, im), channels, -1);
            }

            default:
                return c;
        }
    }
}
