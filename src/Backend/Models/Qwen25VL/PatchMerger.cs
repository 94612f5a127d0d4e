using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The 2x2 patch merger: ln_q (RMSNorm in Qwen2.5-VL, LayerNorm in Qwen2-VL) on each patch, the merge² patches of a block
/// concatenated, then mlp.2(gelu(mlp.0(x))) into the decoder's width.
/// </summary>
internal sealed class PatchMerger : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> ln_q;
    private readonly MergerMlp mlp;
    private readonly long _merged;

    public PatchMerger(Qwen25VLVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(PatchMerger))
    {
        _merged = (long)c.HiddenSize * c.SpatialMergeSize * c.SpatialMergeSize;
        ln_q = c.Qwen25 ? new RmsNormLayer(c.HiddenSize, 1e-6, dtype, device) : new LayerNormLayer(c.HiddenSize, 1e-6, dtype, device);
        mlp = new MergerMlp(_merged, c.OutHiddenSize, dtype, device);
        register_module(nameof(ln_q), ln_q);
        register_module(nameof(mlp), mlp);
    }

    public override Tensor forward(Tensor x) => mlp.forward(ln_q.forward(x).view(-1, _merged));
}
