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

    public SiglipVisionTower(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipVisionTower))
    {
        embeddings = new SiglipEmbeddings(c, dtype, device);
        encoder = new SiglipEncoder(c, dtype, device);
        post_layernorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, dtype, device);
        register_module(nameof(embeddings), embeddings);
        register_module(nameof(encoder), encoder);
        register_module(nameof(post_layernorm), post_layernorm);
    }

    /// <summary>
    /// Hidden state <paramref name="featureLayer"/> (0 = embeddings, i = after encoder layer i, negative from the end)
    /// for pixels [N, C, S, S]; layers after it are not run.
    /// </summary>
    public Tensor HiddenState(Tensor pixels, int featureLayer)
    {
        int count = encoder.Layers.Count + 1;
        int index = featureLayer < 0 ? count + featureLayer : featureLayer;
        using var scope = NewDisposeScope();
        var h = embeddings.forward(pixels);
        for (int i = 0; i < index; i++)
        {
            h = encoder.Layers[i].forward(h);
        }

        return h.MoveToOuterDisposeScope();
    }
}
