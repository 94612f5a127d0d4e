using TorchSharp;
using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Ternary (1.58-bit) quantization: per group <c>t = gamma·mean|x|</c>, code +1 where <c>x &gt; t</c>, -1 where
/// <c>x &lt; -t</c>, else 0. Read back as bare {-1, 0, +1} (the released code and paper Alg. 1), or, with
/// <see cref="Scaled"/>, times the least-squares scale <c>mean |x|</c> over the group's non-zero codes.
/// </summary>
internal sealed class TernaryQuantizer : TensorQuantizer
{
    // Gamma as a Scalar for the quantizer's lifetime (a temporary one may be freed while a native call reads it).
    private readonly Scalar _gamma;

    /// <summary>Creates the quantizer.</summary>
    /// <param name="axis">Grouping axis.</param>
    /// <param name="groupSize">Elements per group.</param>
    /// <param name="gamma">Threshold factor, in (0, 2]: 0.5 in the released code, 0.7 in the paper.</param>
    /// <param name="scaled">Store and apply a per-group scale.</param>
    /// <param name="packing"><see cref="CodeFormat.Trits"/> (5 per byte) or <see cref="CodeFormat.Bits2"/> (4 per byte, as the released code).</param>
    /// <param name="metadataType">Storage type of the scale.</param>
    /// <param name="referenceMetadata">Store mean|x| as scale and -1 as zero point per group, as the released code does (not used when reading back unscaled codes).</param>
    public TernaryQuantizer(QuantizationAxis axis, int groupSize = 32, double gamma = 0.5, bool scaled = false,
        CodeFormat packing = CodeFormat.Trits, ScalarType metadataType = ScalarType.Float16, bool referenceMetadata = false)
        : base(axis, groupSize, metadataType)
    {
        if (!(gamma > 0 && gamma <= 2))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "Gamma must lie in (0, 2]; the released code uses 0.5 and the paper 0.7.");
        }

        if (packing is not (CodeFormat.Trits or CodeFormat.Bits2))
        {
            throw new ArgumentOutOfRangeException(nameof(packing), packing, "Ternary codes pack as Trits (base 3) or Bits2.");
        }

        if (scaled && referenceMetadata)
        {
            throw new ArgumentException("A scaled ternary quantizer stores its own scale; referenceMetadata applies to unscaled codes only.", nameof(referenceMetadata));
        }

        Gamma = gamma;
        Scaled = scaled;
        Packing = packing;
        ReferenceMetadata = referenceMetadata;
        _gamma = gamma.ToScalar();
    }

    /// <summary>Threshold factor.</summary>
    public double Gamma { get; }

    /// <summary>Whether codes are read back times a stored scale.</summary>
    public bool Scaled { get; }

    /// <summary>How the codes are packed.</summary>
    public CodeFormat Packing { get; }

    /// <summary>Whether the released code's unused scale and zero point are stored too.</summary>
    public bool ReferenceMetadata { get; }

    /// <inheritdoc />
    protected override QuantizedTensor QuantizeCore(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (g, dim) = GroupLayout.Group(x.to(ScalarType.Float32), Axis, GroupSize);
        var abs = g.abs();
        var meanAbs = abs.mean(new[] { dim }, keepdim: true);
        var t = meanAbs.mul(_gamma);
        var q = g.gt(t).to(ScalarType.Int32) - g.lt(-t).to(ScalarType.Int32);
        var codes = CodePacking.PackUnchecked(q.add(Scalars.OneInt64, Scalars.OneInt64).to(ScalarType.Byte).reshape(x.shape), Packing);
        Tensor? scale = null, zero = null;
        if (Scaled)
        {
            var nonzero = q.ne(Scalars.ZeroInt64).to(ScalarType.Float32);
            scale = Stored((abs * nonzero).sum(new[] { dim }, keepdim: true) / nonzero.sum(new[] { dim }, keepdim: true).clamp_min(Scalars.OneInt64));
        }
        else if (ReferenceMetadata)
        {
            scale = Stored(meanAbs);
            zero = Stored(full_like(meanAbs, Scalars.NegativeOneInt64));
        }

        return new QuantizedTensor(codes, Packing, x.shape, scale, zero);
    }

    /// <inheritdoc />
    protected override Tensor DequantizeCore(QuantizedTensor q)
    {
        using var scope = NewDisposeScope();
        var levels = Scalars.MinusOne(q.UnpackCodes().to(ScalarType.Float32));
        if (Scaled)
        {
            var (g, _) = GroupLayout.Group(levels, Axis, GroupSize);
            levels = (g * q.Scale!.to(ScalarType.Float32)).reshape(q.Shape);
        }

        return levels.MoveToOuterDisposeScope();
    }
}
