using TorchSharp;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Pre-norm block of CLIP-style vision encoders (SigLIP): x + attn(layernorm(x)), then h + mlp(layernorm(h)).</summary>
internal sealed class VisionEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly LayerNormLayer layer_norm1;
    private readonly Attention self_attn;
    private readonly LayerNormLayer layer_norm2;
    private readonly Mlp mlp;

    public VisionEncoderLayer(AttentionConfig attention, long intermediateSize, double layerNormEps, ScalarType dtype, Device device)
        : base(nameof(VisionEncoderLayer))
    {
        layer_norm1 = new LayerNormLayer(attention.HiddenSize, layerNormEps, dtype, device);
        self_attn = new Attention(attention, dtype, device);
        layer_norm2 = new LayerNormLayer(attention.HiddenSize, layerNormEps, dtype, device);
        mlp = new Mlp(attention.HiddenSize, intermediateSize, dtype, device);
        register_module(nameof(layer_norm1), layer_norm1);
        register_module(nameof(self_attn), self_attn);
        register_module(nameof(layer_norm2), layer_norm2);
        register_module(nameof(mlp), mlp);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, self_attn.forward(new AttentionInput(layer_norm1.forward(x))));
        return InPlace.Add(h, mlp.forward(layer_norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
