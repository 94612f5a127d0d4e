using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Packing;

/// <summary>How integer codes are packed into bytes.</summary>
public enum CodeFormat
{
    /// <summary>1-bit codes, 8 per byte.</summary>
    Bits1 = 1,

    /// <summary>2-bit codes, 4 per byte.</summary>
    Bits2 = 2,

    /// <summary>4-bit codes, 2 per byte.</summary>
    Bits4 = 4,

    /// <summary>8-bit codes, 1 per byte.</summary>
    Bits8 = 8,

    /// <summary>Ternary codes (0, 1, 2) in base 3, 5 per byte (1.6 bits per code).</summary>
    Trits = 3,
}

/// <summary>
/// Packs integer codes along the last dimension into bytes and back. Element <c>i</c> of a byte's run is
/// digit <c>i</c> (least significant first) in base <c>2^bits</c>, or in base 3 for <see cref="CodeFormat.Trits"/>.
/// </summary>
/// <remarks>Pure tensor operations: works on any device, thread-safe, no state.</remarks>
internal static class CodePacking
{
    /// <summary>Number of codes per byte for a format.</summary>
    public static int CodesPerByte(CodeFormat format) => format switch
    {
        CodeFormat.Bits1 => 8,
        CodeFormat.Bits2 => 4,
        CodeFormat.Bits4 => 2,
        CodeFormat.Bits8 => 1,
        CodeFormat.Trits => 5,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Allowed: Bits1, Bits2, Bits4, Bits8, Trits."),
    };

    /// <summary>The number base of one code (the number of distinct code values).</summary>
    public static int Base(CodeFormat format) => format == CodeFormat.Trits ? 3 : 1 << (int)format;

    /// <summary>The format that stores <paramref name="bits"/>-bit codes.</summary>
    public static CodeFormat ForBits(int bits) => bits switch
    {
        1 => CodeFormat.Bits1,
        2 => CodeFormat.Bits2,
        4 => CodeFormat.Bits4,
        8 => CodeFormat.Bits8,
        _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Bit widths that pack are 1, 2, 4 and 8."),
    };

    /// <summary>Bytes needed to hold <paramref name="length"/> codes of one row.</summary>
    public static long PackedLength(long length, CodeFormat format)
    {
        int per = CodesPerByte(format);
        return (length + per - 1) / per;
    }

    /// <summary>
    /// Packs codes (any integer type, each in <c>[0, Base)</c>) along the last dimension into a uint8 tensor whose
    /// last dimension is <see cref="PackedLength"/>; the row is zero-padded to a whole byte.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is a scalar or holds a code outside the allowed range.</exception>
    public static Tensor Pack(Tensor codes, CodeFormat format)
    {
        ArgumentNullException.ThrowIfNull(codes);
        if (codes.dim() == 0)
        {
            throw new ArgumentException("Codes must have at least one dimension; packing runs along the last one.", nameof(codes));
        }

        int b = Base(format);
        if (codes.numel() > 0)
        {
            using var scope = NewDisposeScope();
            long lo = codes.min().to(ScalarType.Int64).item<long>(), hi = codes.max().to(ScalarType.Int64).item<long>();
            if (lo < 0 || hi >= b)
            {
                throw new ArgumentException($"Codes for {format} must lie in [0, {b - 1}]; found values in [{lo}, {hi}].", nameof(codes));
            }
        }

        return PackUnchecked(codes, format);
    }

    /// <summary>Packs codes already known to lie in range (the quantizers' own output).</summary>
    internal static Tensor PackUnchecked(Tensor codes, CodeFormat format)
    {
        int per = CodesPerByte(format);
        using var scope = NewDisposeScope();

        // Every partial sum stays below 256, so the whole computation runs on bytes.
        var bytes = codes.to(ScalarType.Byte);
        long length = codes.shape[^1];
        long packed = PackedLength(length, format);
        long pad = (packed * per) - length;
        if (pad > 0)
        {
            bytes = nn.functional.pad(bytes, new[] { 0L, pad });
        }

        var digits = bytes.reshape(codes.shape[..^1].Append(packed).Append(per).ToArray());
        var result = digits.select(-1, 0).clone();
        var weights = DigitWeights[format];
        for (int i = 1; i < per; i++)
        {
            result.add_(digits.select(-1, i).mul(weights[i]), Scalars.OneInt64);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// base^i for digit i of each format, as Scalars alive for the process: a temporary Scalar may be freed by the
    /// garbage collector while the native call reads it.
    /// </summary>
    private static readonly Dictionary<CodeFormat, Scalar[]> DigitWeights =
        Enum.GetValues<CodeFormat>().ToDictionary(f => f, f => Powers(f).Select(w => ((long)w).ToScalar()).ToArray());

    /// <summary>Unpacks the first <paramref name="length"/> codes of each row as uint8.</summary>
    /// <exception cref="ArgumentException">The packed tensor is not uint8 or is too short for <paramref name="length"/> codes.</exception>
    public static Tensor Unpack(Tensor packed, long length, CodeFormat format)
    {
        ArgumentNullException.ThrowIfNull(packed);
        if (packed.dtype != ScalarType.Byte)
        {
            throw new ArgumentException($"Packed codes must be uint8; got {packed.dtype}.", nameof(packed));
        }

        if (length < 0 || PackedLength(length, format) != packed.shape[^1])
        {
            throw new ArgumentException($"{length} codes of {format} need {PackedLength(Math.Max(length, 0), format)} bytes per row; the packed rows have {packed.shape[^1]}.", nameof(length));
        }

        int per = CodesPerByte(format);
        using var scope = NewDisposeScope();
        if (per == 1)
        {
            return packed.narrow(-1, 0, length).clone().MoveToOuterDisposeScope();
        }

        var divisors = Weights(format, packed.device);
        using var radix = Base(format).ToScalar();
        var digits = packed.unsqueeze(-1).floor_divide(divisors).remainder(radix);
        var shape = packed.shape[..^1].Append(packed.shape[^1] * per).ToArray();
        return digits.reshape(shape).narrow(-1, 0, length).MoveToOuterDisposeScope();
    }

    private static Tensor Weights(CodeFormat format, Device device)
        => tensor(Powers(format).Select(v => (byte)v).ToArray(), ScalarType.Byte, device);

    /// <summary>base^i for each digit i of a byte: digit i of a byte is (byte / base^i) mod base.</summary>
    private static int[] Powers(CodeFormat format)
    {
        int per = CodesPerByte(format);
        int b = Base(format);
        var w = new int[per];
        int v = 1;
        for (int i = 0; i < per; i++)
        {
            w[i] = v;
            v *= b;
        }

        return w;
    }
}
