using TorchSharp;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Pre-norm decoder block of Qwen2-style models: x + attn(rmsnorm(x)), then h + mlp(rmsnorm(h)).</summary>
internal sealed class DecoderLayer : nn.Module
{
    private readonly RmsNormLayer input_layernorm;
    private readonly Attention self_attn;
    private readonly RmsNormLayer post_attention_layernorm;
    private readonly GatedMlp mlp;

    public DecoderLayer(AttentionConfig attention, long intermediateSize, double rmsNormEps, ScalarType dtype, Device device)
        : base(nameof(DecoderLayer))
    {
        input_layernorm = new RmsNormLayer(attention.HiddenSize, rmsNormEps, dtype, device);
        self_attn = new Attention(attention, dtype, device);
        post_attention_layernorm = new RmsNormLayer(attention.HiddenSize, rmsNormEps, dtype, device);
        mlp = new GatedMlp(attention.HiddenSize, intermediateSize, false, dtype, device);
        register_module(nameof(input_layernorm), input_layernorm);
        register_module(nameof(self_attn), self_attn);
        register_module(nameof(post_attention_layernorm), post_attention_layernorm);
        register_module(nameof(mlp), mlp);
    }

    public Tensor forward(AttentionInput input)
    {
        using var scope = NewDisposeScope();
        var x = input.Hidden;
        var profile = StepProfile.Current;
        profile?.Mark("embedding, final norm, logits (outside the layers)");
        var normed = input_layernorm.forward(x);
        profile?.Mark("input norm");
        var h = self_attn.ForwardAddTo(x, input with { Hidden = normed });
        profile?.Mark("output projection and residual");
        normed = post_attention_layernorm.forward(h);
        profile?.Mark("post-attention norm");
        var output = mlp.ForwardAddTo(h, normed);
        profile?.Mark("MLP and residual");
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>One decode step for N sequences [N, 1, D], each over its own cache; see <see cref="Attention.ForwardDecodeBatch"/>.</summary>
    public Tensor ForwardDecodeBatch(Tensor x, RotaryTables rotary, IReadOnlyList<VidKV.AI.Quantization.Cache.QuantizedKVCache> caches, bool rowWise)
    {
        using var scope = NewDisposeScope();
        var h = self_attn.ForwardDecodeBatch(input_layernorm.forward(x), rotary, caches, rowWise, residual: x);
        var normed = post_attention_layernorm.forward(h);
        var output = rowWise ? Scalars.Add(h, Attention.PerRow(normed, mlp.forward)) : mlp.ForwardAddTo(h, normed);
        StepProfile.Current?.Mark("MLP and its norm");
        return output.MoveToOuterDisposeScope();
    }
}
