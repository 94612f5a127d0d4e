using TorchSharp;
using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Asymmetric b-bit quantization (b in 2, 4, 8): per group <c>mn = min</c>, <c>s = (max - mn) / (2^b - 1)</c>,
/// <c>q = clamp(round_half_even((x - mn) / s), 0, 2^b - 1)</c>, <c>x' = q·s + mn</c>; a group with
/// <c>s == 0</c> stores code 0 and reconstructs to <c>mn</c>.
/// </summary>
/// <remarks>Codes are computed against the stored (rounded) scale and zero point, so that what is read back is
/// exactly <c>q·s + mn</c> with the values held.</remarks>
internal sealed class AsymmetricQuantizer : TensorQuantizer
{
    // 2^b - 1 for each allowed b, alive for the process (a temporary Scalar may be freed while a native call reads it).
    private static readonly Scalar Levels2 = 3L.ToScalar(), Levels4 = 15L.ToScalar(), Levels8 = 255L.ToScalar();

    private readonly Scalar _levels;

    /// <summary>Creates the quantizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bits"/> is not 2, 4 or 8, or a grouping value is invalid.</exception>
    public AsymmetricQuantizer(int bits, QuantizationAxis axis, int groupSize = 32, ScalarType metadataType = ScalarType.Float16)
        : base(axis, groupSize, metadataType)
    {
        if (bits is not (2 or 4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "Asymmetric quantization supports 2, 4 or 8 bits.");
        }

        Bits = bits;
        _levels = bits switch { 2 => Levels2, 4 => Levels4, _ => Levels8 };
    }

    /// <summary>Bits per code.</summary>
    public int Bits { get; }

    /// <inheritdoc />
    protected override QuantizedTensor QuantizeCore(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (g, dim) = GroupLayout.Group(x.to(ScalarType.Float32), Axis, GroupSize);
        var mn = Stored(g.amin(new[] { dim }, keepdim: true));
        var scale = Stored((g.amax(new[] { dim }, keepdim: true) - g.amin(new[] { dim }, keepdim: true)).div(_levels));
        var s = scale.to(ScalarType.Float32);
        var zero = s.eq(Scalars.ZeroInt64);
        var q = ((g - mn.to(ScalarType.Float32)) / s.masked_fill(zero, Scalars.OneInt64)).round().clamp(Scalars.ZeroInt64, _levels).masked_fill(zero, Scalars.ZeroInt64);
        var codes = CodePacking.PackUnchecked(q.to(ScalarType.Byte).reshape(x.shape), CodePacking.ForBits(Bits));
        return new QuantizedTensor(codes, CodePacking.ForBits(Bits), x.shape, scale, mn);
    }

    /// <inheritdoc />
    protected override Tensor DequantizeCore(QuantizedTensor q)
    {
        using var scope = NewDisposeScope();
        var (g, _) = GroupLayout.Group(q.UnpackCodes().to(ScalarType.Float32), Axis, GroupSize);
        var x = Scalars.Add(g * q.Scale!.to(ScalarType.Float32), q.Zero!.to(ScalarType.Float32));
        return x.reshape(q.Shape).MoveToOuterDisposeScope();
    }
}
