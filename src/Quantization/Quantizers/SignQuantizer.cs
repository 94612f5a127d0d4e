using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>How a 1-bit sign code is read back.</summary>
public enum SignReconstruction
{
    /// <summary>Bit 1 reads <c>s</c>, bit 0 reads 0 (the released code and paper Eq. 5).</summary>
    ZeroOrScale,

    /// <summary>Bit 1 reads <c>+s</c>, bit 0 reads <c>-s</c>.</summary>
    PlusMinusScale,
}

/// <summary>
/// Sign 1-bit quantization: <c>bit = x &gt;= 0</c>, <c>s = mean|x|</c> over the group; read back as {0, s}
/// (default) or {-s, +s}.
/// </summary>
internal sealed class SignQuantizer : TensorQuantizer
{
    /// <summary>Creates the quantizer.</summary>
    /// <param name="axis">Grouping axis.</param>
    /// <param name="groupSize">Elements per group.</param>
    /// <param name="reconstruction">How a bit is read back.</param>
    /// <param name="metadataType">Storage type of the scale.</param>
    /// <param name="storeZeroPoint">Also store an all-zero zero point per group, as the released code does.</param>
    public SignQuantizer(QuantizationAxis axis, int groupSize = 32, SignReconstruction reconstruction = SignReconstruction.ZeroOrScale,
        ScalarType metadataType = ScalarType.Float16, bool storeZeroPoint = false)
        : base(axis, groupSize, metadataType)
    {
        if (!Enum.IsDefined(reconstruction))
        {
            throw new ArgumentOutOfRangeException(nameof(reconstruction), reconstruction, "Allowed: ZeroOrScale, PlusMinusScale.");
        }

        Reconstruction = reconstruction;
        StoreZeroPoint = storeZeroPoint;
    }

    /// <summary>How a bit is read back.</summary>
    public SignReconstruction Reconstruction { get; }

    /// <summary>Whether an (all-zero) zero point is stored with each group.</summary>
    public bool StoreZeroPoint { get; }

    /// <inheritdoc />
    protected override QuantizedTensor QuantizeCore(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(ScalarType.Float32);
        var (g, dim) = GroupLayout.Group(xf, Axis, GroupSize);
        var scale = Stored(g.abs().mean(new[] { dim }, keepdim: true));
        var codes = CodePacking.PackUnchecked(xf.ge(Scalars.ZeroInt64).to(ScalarType.Byte), CodeFormat.Bits1);
        return new QuantizedTensor(codes, CodeFormat.Bits1, x.shape, scale, StoreZeroPoint ? zeros_like(scale) : null);
    }

    /// <inheritdoc />
    protected override Tensor DequantizeCore(QuantizedTensor q)
    {
        using var scope = NewDisposeScope();
        var (g, _) = GroupLayout.Group(q.UnpackCodes().to(ScalarType.Float32), Axis, GroupSize);
        var levels = Reconstruction == SignReconstruction.ZeroOrScale ? g : Scalars.MinusOne(g.mul(Scalars.Two));
        var x = levels * q.Scale!.to(ScalarType.Float32);
        if (q.Zero is not null)
        {
            x = Scalars.Add(x, q.Zero.to(ScalarType.Float32));
        }

        return x.reshape(q.Shape).MoveToOuterDisposeScope();
    }
}
