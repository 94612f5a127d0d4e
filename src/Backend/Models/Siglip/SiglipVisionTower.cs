using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>Patch embedding (a stride-p convolution) plus learned position embeddings.</summary>
internal sealed class SiglipEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly PatchEmbedding patch_embedding;
    private readonly EmbeddingLayer position_embedding;

    public SiglipEmbeddings(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipEmbeddings))
    {
        patch_embedding = new PatchEmbedding(c, dtype, device);
        position_embedding = new EmbeddingLayer((long)c.PatchesPerSide * c.PatchesPerSide, c.HiddenSize, dtype, device);
        register_module(nameof(patch_embedding), patch_embedding);
        register_module(nameof(position_embedding), position_embedding);
    }

    /// <summary>pixels [N, C, S, S] -> [N, patches, hidden].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var tokens = patch_embedding.forward(pixels).flatten(2).transpose(1, 2);
        return Scalars.Add(tokens, position_embedding.Weight.unsqueeze(0)).MoveToOuterDisposeScope();
    }
}

/// <summary>A convolution with kernel and stride equal to the patch size.</summary>
internal sealed class PatchEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long _patch;

    public PatchEmbedding(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(PatchEmbedding))
    {
        _patch = c.PatchSize;
        weight = new Parameter(empty(new long[] { c.HiddenSize, c.NumChannels, c.PatchSize, c.PatchSize }, dtype, device), requires_grad: false);
        bias = new Parameter(empty(new long[] { c.HiddenSize }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    public override Tensor forward(Tensor pixels)
        => nn.functional.conv2d(pixels.to(weight.dtype), weight, bias, new[] { _patch, _patch }, new[] { 0L, 0L }, new[] { 1L, 1L }, 1);
}

/// <summary>Multi-head self-attention over all patches (not causal).</summary>
internal sealed class SiglipAttention : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer q_proj;
    private readonly LinearLayer k_proj;
    private readonly LinearLayer v_proj;
    private readonly LinearLayer out_proj;
    private readonly int _heads;

    public SiglipAttention(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipAttention))
    {
        _heads = c.NumHeads;
        q_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, true, dtype, device);
        k_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, true, dtype, device);
        v_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, true, dtype, device);
        out_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, true, dtype, device);
        register_module(nameof(q_proj), q_proj);
        register_module(nameof(k_proj), k_proj);
        register_module(nameof(v_proj), v_proj);
        register_module(nameof(out_proj), out_proj);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], t = x.shape[1], d = x.shape[2], hd = d / _heads;
        Tensor Heads(Tensor y) => y.view(n, t, _heads, hd).transpose(1, 2);
        var output = nn.functional.scaled_dot_product_attention(Heads(q_proj.forward(x)), Heads(k_proj.forward(x)), Heads(v_proj.forward(x)), null, 0.0, false);
        return out_proj.forward(output.transpose(1, 2).reshape(n, t, d)).MoveToOuterDisposeScope();
    }
}

/// <summary>fc2(gelu_tanh(fc1(x))).</summary>
internal sealed class SiglipMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer fc1;
    private readonly LinearLayer fc2;

    public SiglipMlp(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipMlp))
    {
        fc1 = new LinearLayer(c.HiddenSize, c.IntermediateSize, true, dtype, device);
        fc2 = new LinearLayer(c.IntermediateSize, c.HiddenSize, true, dtype, device);
        register_module(nameof(fc1), fc1);
        register_module(nameof(fc2), fc2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x), GELU.Approximate.tanh)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm encoder layer.</summary>
internal sealed class SiglipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly LayerNormLayer layer_norm1;
    private readonly SiglipAttention self_attn;
    private readonly LayerNormLayer layer_norm2;
    private readonly SiglipMlp mlp;

    public SiglipEncoderLayer(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipEncoderLayer))
    {
        layer_norm1 = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, dtype, device);
        self_attn = new SiglipAttention(c, dtype, device);
        layer_norm2 = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, dtype, device);
        mlp = new SiglipMlp(c, dtype, device);
        register_module(nameof(layer_norm1), layer_norm1);
        register_module(nameof(self_attn), self_attn);
        register_module(nameof(layer_norm2), layer_norm2);
        register_module(nameof(mlp), mlp);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, self_attn.forward(layer_norm1.forward(x)));
        return Scalars.Add(h, mlp.forward(layer_norm2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>Holds the encoder layers under the name "layers".</summary>
internal sealed class SiglipEncoder : nn.Module
{
    private readonly ModuleList<SiglipEncoderLayer> layers;
    private readonly SiglipEncoderLayer[] _layers;

    public SiglipEncoder(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipEncoder))
    {
        _layers = Enumerable.Range(0, c.NumLayers).Select(_ => new SiglipEncoderLayer(c, dtype, device)).ToArray();
        layers = new ModuleList<SiglipEncoderLayer>(_layers);
        register_module(nameof(layers), layers);
    }

    public IReadOnlyList<SiglipEncoderLayer> Layers => _layers;
}

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
