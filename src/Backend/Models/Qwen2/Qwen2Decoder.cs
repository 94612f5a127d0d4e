using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen2;

/// <summary>The Qwen2 decoder stack: embeddings, layers, final norm (the LM head lives with the full model).</summary>
internal sealed class Qwen2Decoder : nn.Module
{
    private readonly EmbeddingLayer embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNormLayer norm;
    private readonly Qwen2Config _config;

    public Qwen2Decoder(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(Qwen2Decoder))
    {
        _config = c;
        var attention = new AttentionConfig(c.HiddenSize, c.NumHeads, c.NumKeyValueHeads, c.HeadDim) { QkvBias = true, OutputBias = false };
        embed_tokens = new EmbeddingLayer(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(_ => new DecoderLayer(attention, c.IntermediateSize, c.RmsNormEps, dtype, device)).ToArray());
        norm = new RmsNormLayer(c.HiddenSize, c.RmsNormEps, dtype, device);
        register_module(nameof(embed_tokens), embed_tokens);
        register_module(nameof(layers), layers);
        register_module(nameof(norm), norm);
    }

    public EmbeddingLayer Embeddings => embed_tokens;

    /// <summary>
    /// Runs the layers over embeddings [B, T, D] at positions [T] and returns the final-normed hidden states. The hook, when
    /// given, sees each layer's output and may replace its keys and values (without caches).
    /// </summary>
    public Tensor Forward(Tensor embeds, Tensor positions, IReadOnlyList<QuantizedKVCache>? caches, Tensor? importance, IDecoderHook? hook)
    {
        using var scope = NewDisposeScope();
        var rotary = RotaryEmbedding.Tables(positions, _config.HeadDim, _config.RopeTheta);
        var h = embeds;
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].forward(new AttentionInput(h) { Rotary = rotary, Causal = true, Cache = caches?[i], Importance = importance, Layer = i, Hook = hook });
            hook?.OnLayerOutput(i, h);
        }

        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
