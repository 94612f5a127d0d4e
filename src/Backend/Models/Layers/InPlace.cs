using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Element-wise updates done in place when autograd does not track the tensors (inference), else out of place.</summary>
internal static class InPlace
{
    /// <summary>a + b, written into <paramref name="a"/> (a fresh temporary of the caller) when neither needs gradients.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.requires_grad || b.requires_grad ? Scalars.Add(a, b) : a.add_(b);
}
