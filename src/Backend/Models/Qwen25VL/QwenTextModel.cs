using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The decoder of Qwen2-VL and Qwen2.5-VL: a Qwen2 stack (embeddings, pre-norm layers with GQA and biased q/k/v, final
/// norm) whose rotary tables come from the caller (multimodal positions).
/// </summary>
internal sealed class QwenTextModel : nn.Module
{
    private readonly EmbeddingLayer embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNormLayer norm;

    public QwenTextModel(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(QwenTextModel))
    {
        var attention = new AttentionConfig(c.HiddenSize, c.NumHeads, c.NumKeyValueHeads, c.HeadDim) { QkvBias = true, OutputBias = false };
        embed_tokens = new EmbeddingLayer(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(_ => new DecoderLayer(attention, c.IntermediateSize, c.RmsNormEps, dtype, device)).ToArray());
        norm = new RmsNormLayer(c.HiddenSize, c.RmsNormEps, dtype, device);
        register_module(nameof(embed_tokens), embed_tokens);
        register_module(nameof(layers), layers);
        register_module(nameof(norm), norm);
    }

    public EmbeddingLayer Embeddings => embed_tokens;

    /// <summary>Runs the layers over embeddings [B, T, D] with the given rotary tables; returns the final-normed hidden states.</summary>
    public Tensor Forward(Tensor embeds, RotaryTables rotary, IReadOnlyList<QuantizedKVCache>? caches, Tensor? importance, IDecoderHook? hook)
    {
        using var scope = NewDisposeScope();
        var h = embeds;
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].forward(new AttentionInput(h) { Rotary = rotary, Causal = true, Cache = caches?[i], Importance = importance, Layer = i, Hook = hook });
            hook?.OnLayerOutput(i, h);
        }

        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
