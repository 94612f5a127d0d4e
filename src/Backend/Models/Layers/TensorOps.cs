using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// Hot-path tensor operations without temporary <see cref="Scalar"/>s. TorchSharp's <c>Tensor + Tensor</c> (and
/// <c>Tensor + double</c>) pass a temporary Scalar whose native handle is read before the native call; the garbage
/// collector may finalize (free) it while the call runs, which under allocation pressure shows up as a native
/// <c>Scalar::toFloat</c> check failure (seen after a few hundred training steps on CUDA). Scalars that live as long
/// as the process (or the module) are never finalized mid-call.
/// </summary>
internal static class TensorOps
{
    /// <summary>The scalar 1, alive for the whole process.</summary>
    public static readonly Scalar One = 1.0;

    /// <summary>a + b.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + s, with <paramref name="s"/> a Scalar the caller keeps alive.</summary>
    public static Tensor Add(Tensor a, Scalar s) => a.add(s, One);
}
