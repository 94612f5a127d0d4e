using VidKV.AI.Backend.Models;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

/// <summary>
/// The trainer's decoder hook: keys and values through a quantized cache and back (for the queries a mask marks, or all),
/// and each layer's output kept when an objective reads a hidden layer.
/// </summary>
internal sealed class TrainingHook : IDecoderHook
{
    private readonly CacheRoundTrip? _roundTrip;
    private readonly Tensor? _queryMask;

    /// <param name="roundTrip">The cache in the loop; <see langword="null"/> for none.</param>
    /// <param name="queryMask">Which queries [B, T] read the round-tripped keys and values; <see langword="null"/>: all.</param>
    /// <param name="keepLayerOutputs">Whether to keep each layer's output in <see cref="LayerOutputs"/>.</param>
    public TrainingHook(CacheRoundTrip? roundTrip, Tensor? queryMask, bool keepLayerOutputs)
    {
        _roundTrip = roundTrip;
        _queryMask = queryMask;
        LayerOutputs = keepLayerOutputs ? new List<Tensor>() : null;
    }

    /// <summary>Each layer's output [B, T, D] in the caller's dispose scope, when kept.</summary>
    public List<Tensor>? LayerOutputs { get; }

    /// <inheritdoc />
    public KeyValueReplacement? ReplaceKeyValues(int layer, Tensor keys, Tensor values)
    {
        if (_roundTrip is null)
        {
            return null;
        }

        var (k, v) = _roundTrip.Apply(layer, keys, values);
        return new KeyValueReplacement(k, v) { QueryMask = _queryMask };
    }

    /// <inheritdoc />
    public void OnLayerOutput(int layer, Tensor hidden) => LayerOutputs?.Add(hidden.MoveToOuterDisposeScope());
}
