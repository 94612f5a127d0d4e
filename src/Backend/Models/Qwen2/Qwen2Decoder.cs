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
        // No dispose scope here: a hook's kept layer outputs move to the scope around the other overload's, the caller's.
        var rotary = RotaryEmbedding.Tables(positions, _config.HeadDim, _config.RopeTheta);
        try
        {
            return Forward(embeds, rotary, caches, importance, hook);
        }
        finally
        {
            rotary.Cos.Dispose();
            rotary.Sin.Dispose();
        }
    }

    /// <summary>
    /// Runs the layers with the given rotary tables (Qwen2.5-VL's multimodal ones) and returns the final-normed hidden
    /// states; otherwise as the overload with positions.
    /// </summary>
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

    /// <summary>
    /// One decode step for N sequences: embeddings [N, 1, D], each row at its own position <paramref name="positions"/>[i]
    /// ([1]) over its own per-layer caches <paramref name="caches"/>[i]; returns the final-normed hidden states [N, 1, D].
    /// <paramref name="rowWise"/>: projections once per row (see <see cref="Attention.ForwardDecodeBatch"/>).
    /// </summary>
    public Tensor ForwardDecodeBatch(Tensor embeds, IReadOnlyList<Tensor> positions, IReadOnlyList<IReadOnlyList<QuantizedKVCache>> caches, bool rowWise)
    {
        using var scope = NewDisposeScope();
        long n = embeds.shape[0];

        // Tables per sequence, as a one-sequence step computes them, stacked to [N, 1, 1, hd] to broadcast over heads.
        var tables = positions.Select(p => RotaryEmbedding.Tables(p, _config.HeadDim, _config.RopeTheta)).ToArray();
        var rotary = new RotaryTables(
            cat(tables.Select(t => t.Cos).ToArray(), 0).view(n, 1, 1, _config.HeadDim),
            cat(tables.Select(t => t.Sin).ToArray(), 0).view(n, 1, 1, _config.HeadDim));
        var h = embeds;
        var layerCaches = new QuantizedKVCache[n];
        for (int i = 0; i < layers.Count; i++)
        {
            for (int s = 0; s < n; s++)
            {
                layerCaches[s] = caches[s][i];
            }

            h = layers[i].ForwardDecodeBatch(h, rotary, layerCaches, rowWise);
        }

        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
