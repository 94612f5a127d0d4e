using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>
/// The SigLIP vision transformer. Features are taken from a chosen encoder layer's output, before the post-layernorm,
/// as transformers does for LLaVA-OneVision (hidden_states[vision_feature_layer]).
/// </summary>
internal sealed class SiglipVisionTower : nn.Module
{
    private readonly SiglipEmbeddings embeddings;
    private readonly SiglipEncoder encoder;
    private readonly LayerNormLayer post_layernorm;
    private readonly int _patchesPerSide;

    public SiglipVisionTower(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipVisionTower))
    {
        embeddings = new SiglipEmbeddings(c, dtype, device);
        encoder = new SiglipEncoder(c, dtype, device);
        post_layernorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, dtype, device);
        register_module(nameof(embeddings), embeddings);
        register_module(nameof(encoder), encoder);
        register_module(nameof(post_layernorm), post_layernorm);
        _patchesPerSide = c.PatchesPerSide;
    }

    /// <summary>
    /// Hidden state <paramref name="featureLayer"/> (0 = embeddings, i = after encoder layer i, negative from the end)
    /// for pixels [N, C, S, S]; layers after it are not run.
    /// </summary>
    public Tensor HiddenState(Tensor pixels, int featureLayer) => HiddenState(pixels, featureLayer, ChunkTokens);

    /// <summary><see cref="HiddenState(Tensor, int)"/> with at most <paramref name="chunkTokens"/> tokens (images x patches, at
    /// least one image) per pass through the layers.</summary>
    internal Tensor HiddenState(Tensor pixels, int featureLayer, long chunkTokens)
    {
        int count = encoder.Layers.Count + 1;
        int index = featureLayer < 0 ? count + featureLayer : featureLayer;
        using var scope = NewDisposeScope();
        long patches = (long)_patchesPerSide * _patchesPerSide;
        long perChunk = Math.Max(1, chunkTokens / patches);
        long n = pixels.shape[0];
        if (n <= perChunk || pixels.requires_grad || is_grad_enabled() && parameters().Any(p => p.requires_grad))
        {
            return Run(pixels, index).MoveToOuterDisposeScope();
        }

        // Images are independent: a few at a time through every layer keep each layer's temporaries a few MB (the whole
        // batch's MLP activations of 32 frames are 200 MB, paged in afresh by every operation), with the same products.
        var chunks = new List<Tensor>();
        for (long start = 0; start < n; start += perChunk)
        {
            using var chunkScope = NewDisposeScope();
            chunks.Add(Run(pixels.narrow(0, start, Math.Min(perChunk, n - start)), index).MoveToOuterDisposeScope());
        }

        return cat(chunks, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Tokens (images x patches) per pass through the layers.</summary>
    internal const long ChunkTokens = 1024;

    private Tensor Run(Tensor pixels, int layers)
    {
        var h = embeddings.forward(pixels);
        for (int i = 0; i < layers; i++)
        {
            h = encoder.Layers[i].forward(h);
        }

        return h;
    }
}
