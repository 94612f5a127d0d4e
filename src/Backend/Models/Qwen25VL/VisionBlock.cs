using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// A pre-norm vision block: x + attn(norm1(x)), then h + mlp(norm2(h)). Qwen2.5-VL: RMSNorm and a gated SiLU MLP with
/// biases; Qwen2-VL: LayerNorm and a quick-GELU MLP.
/// </summary>
internal sealed class VisionBlock : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly nn.Module<Tensor, Tensor> norm2;
    private readonly VisionAttention attn;
    private readonly nn.Module<Tensor, Tensor> mlp;

    public VisionBlock(Qwen25VLVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(VisionBlock))
    {
        norm1 = c.Qwen25 ? new RmsNormLayer(c.HiddenSize, 1e-6, dtype, device) : new LayerNormLayer(c.HiddenSize, 1e-6, dtype, device);
        norm2 = c.Qwen25 ? new RmsNormLayer(c.HiddenSize, 1e-6, dtype, device) : new LayerNormLayer(c.HiddenSize, 1e-6, dtype, device);
        attn = new VisionAttention(c.HiddenSize, c.NumHeads, dtype, device);
        mlp = c.Qwen25 ? new GatedMlp(c.HiddenSize, c.IntermediateSize, true, dtype, device) : new VisionMlp(c.HiddenSize, c.IntermediateSize, dtype, device);
        register_module(nameof(norm1), norm1);
        register_module(nameof(norm2), norm2);
        register_module(nameof(attn), attn);
        register_module(nameof(mlp), mlp);
    }

    public Tensor forward(Tensor x, RotaryTables rotary, IReadOnlyList<(long Start, long Length)> runs)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, attn.forward(norm1.forward(x), rotary, runs));
        return Scalars.Add(h, mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
