using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Packed codes of a tensor of logical shape <see cref="Shape"/> (last two dimensions: tokens, channels),
/// with the per-group scale and zero point its quantizer stored. Owns its tensors.
/// </summary>
internal sealed class QuantizedTensor : IDisposable
{
    private readonly bool _owned;

    internal QuantizedTensor(Tensor codes, CodeFormat format, long[] shape, Tensor? scale, Tensor? zero)
        : this(Owned(codes)!, format, shape, Owned(scale), Owned(zero), owned: true)
    {
    }

    /// <summary>
    /// Takes ownership of a tensor the quantizer made, in contiguous memory (fused attention reads the raw bytes): a
    /// strided one is copied and the original disposed.
    /// </summary>
    private static Tensor? Owned(Tensor? t)
    {
        if (t is null || t.is_contiguous())
        {
            return t?.DetachFromDisposeScope();
        }

        var copy = t.contiguous().DetachFromDisposeScope();
        t.Dispose();
        return copy;
    }

    private QuantizedTensor(Tensor codes, CodeFormat format, long[] shape, Tensor? scale, Tensor? zero, bool owned)
    {
        Codes = codes;
        Format = format;
        Shape = shape;
        Scale = scale;
        Zero = zero;
        _owned = owned;
    }

    /// <summary>Codes packed along the last dimension (uint8).</summary>
    public Tensor Codes { get; }

    /// <summary>How the codes are packed.</summary>
    public CodeFormat Format { get; }

    /// <summary>The logical (unpacked) shape.</summary>
    public long[] Shape { get; }

    /// <summary>Per-group scales, or <see langword="null"/> when the quantizer needs none.</summary>
    public Tensor? Scale { get; }

    /// <summary>Per-group zero points (minimums), or <see langword="null"/> when the quantizer needs none.</summary>
    public Tensor? Zero { get; }

    /// <summary>Number of logical elements.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Bytes held by the packed codes.</summary>
    public long CodeBytes => Codes.NumberOfElements * Codes.ElementSize;

    /// <summary>Bytes held by scales and zero points.</summary>
    public long MetadataBytes => Bytes(Scale) + Bytes(Zero);

    /// <summary>Every byte this tensor holds.</summary>
    public long TotalBytes => CodeBytes + MetadataBytes;

    /// <summary>The codes unpacked to uint8 in the logical shape.</summary>
    public Tensor UnpackCodes() => CodePacking.Unpack(Codes, Shape[^1], Format).reshape(Shape);

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_owned)
        {
            return;
        }

        Codes.Dispose();
        Scale?.Dispose();
        Zero?.Dispose();
    }

    /// <summary>A non-owning view over slices of another quantized tensor (its tensors stay in the caller's dispose scope).</summary>
    internal static QuantizedTensor View(Tensor codes, CodeFormat format, long[] shape, Tensor? scale, Tensor? zero)
        => new(codes, format, shape, scale, zero, owned: false);

    internal static long Bytes(Tensor? t) => t is null ? 0 : t.NumberOfElements * t.ElementSize;
}
