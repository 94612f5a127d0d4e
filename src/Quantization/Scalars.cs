using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization;

/// <summary>
/// Scalars that live for the whole process, and hot-path operations that use them. TorchSharp turns numbers (and the
/// implicit alpha of <c>Tensor + Tensor</c>) into temporary <see cref="Scalar"/>s whose native handles are read before
/// the native call; the garbage collector may free such a temporary while the call runs (seen as a native
/// <c>Scalar::toFloat</c> check failure under allocation pressure). Long-lived scalars are never freed mid-call.
/// </summary>
/// <remarks>Thread-safe: the scalars are immutable.</remarks>
internal static class Scalars
{
    /// <summary>The scalar 0.</summary>
    public static readonly Scalar Zero = 0.0;

    /// <summary>The scalar 1.</summary>
    public static readonly Scalar One = 1.0;

    /// <summary>The integer scalar 0.</summary>
    public static readonly Scalar ZeroInt64 = 0L;

    /// <summary>The integer scalar 1 (the alpha of additions on integer tensors).</summary>
    public static readonly Scalar OneInt64 = 1L;

    /// <summary>The integer scalar -1.</summary>
    public static readonly Scalar NegativeOneInt64 = -1L;

    /// <summary>The boolean scalar <see langword="true"/>.</summary>
    public static readonly Scalar True = true;

    /// <summary>The scalar 2.</summary>
    public static readonly Scalar Two = 2.0;

    /// <summary>Negative infinity, for masking.</summary>
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity;

    /// <summary>NaN (scores of tokens that may not be protected).</summary>
    public static readonly Scalar NaN = double.NaN;

    /// <summary>a + b.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + s, with <paramref name="s"/> a Scalar the caller keeps alive.</summary>
    public static Tensor Add(Tensor a, Scalar s) => a.add(s, One);

    /// <summary>a - 1.</summary>
    public static Tensor MinusOne(Tensor a) => a.sub(One);
}
