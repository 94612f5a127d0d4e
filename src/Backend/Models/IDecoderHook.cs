using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models;

/// <summary>
/// The one training hook of a decoder: it may replace each layer's keys and values before attention (for example by their
/// round trip through a quantized cache) and sees each layer's output. Inference passes none.
/// </summary>
/// <remarks>
/// Called on the forward pass's thread. Tensors given to the hook belong to the decoder's dispose scope: call
/// <c>MoveToOuterDisposeScope()</c> on a tensor to keep it after the forward pass returns.
/// </remarks>
public interface IDecoderHook
{
    /// <summary>
    /// Keys and values [B, H_kv, T, hd] that layer <paramref name="layer"/>'s queries attend to instead of its own, or
    /// <see langword="null"/> to keep them. Only for forward passes without a cache.
    /// </summary>
    KeyValueReplacement? ReplaceKeyValues(int layer, Tensor keys, Tensor values) => null;

    /// <summary>Called with layer <paramref name="layer"/>'s output [B, T, D].</summary>
    void OnLayerOutput(int layer, Tensor hidden)
    {
    }
}
