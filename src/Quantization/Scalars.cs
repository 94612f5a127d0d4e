using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization;

/// <summary>
/// Scalars that live for the whole process, and operations that use them. TorchSharp turns numbers (and the implicit
/// alpha of <c>Tensor + Tensor</c>) into temporary <see cref="Scalar"/>s whose native handles are read before the native
/// call; the garbage collector may free such a temporary while the call runs. The decode path uses these instead.
/// </summary>
internal static class Scalars
{
    public static readonly Scalar One = 1.0;
    public static readonly Scalar Two = 2.0;
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity;

    /// <summary>a + b.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a - 1.</summary>
    public static Tensor MinusOne(Tensor a) => a.sub(One);
}
