using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models;

/// <summary>Keys and values that replace a layer's own (see <see cref="IDecoderHook.ReplaceKeyValues"/>).</summary>
/// <param name="Keys">Keys [B, H_kv, T, hd].</param>
/// <param name="Values">Values [B, H_kv, T, hd].</param>
public sealed record KeyValueReplacement(Tensor Keys, Tensor Values)
{
    /// <summary>Which queries [B, T] (bool) read the replacement; the others read the layer's own. <see langword="null"/>: all.</summary>
    public Tensor? QueryMask { get; init; }
}
