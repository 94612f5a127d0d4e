using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>SwiGLU MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
internal sealed class GatedMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer gate_proj;
    private readonly LinearLayer up_proj;
    private readonly LinearLayer down_proj;

    public GatedMlp(long hiddenSize, long intermediateSize, bool bias, ScalarType dtype, Device device)
        : base(nameof(GatedMlp))
    {
        gate_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        up_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        down_proj = new LinearLayer(intermediateSize, hiddenSize, bias, dtype, device);
        register_module(nameof(gate_proj), gate_proj);
        register_module(nameof(up_proj), up_proj);
        register_module(nameof(down_proj), down_proj);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        bool tracked = is_grad_enabled() && gate_proj.Weight.requires_grad;
        return InPlace.ByRowChunks(x, 2 * gate_proj.Weight.shape[0], down_proj.Weight.shape[0], tracked, Forward).MoveToOuterDisposeScope(); // gate and up
    }

    private Tensor Forward(Tensor x)
    {
        var gate = gate_proj.forward(x);
        var up = up_proj.forward(x);
        return down_proj.forward(gate.requires_grad || up.requires_grad ? nn.functional.silu(gate) * up : nn.functional.silu(gate, inplace: true).mul_(up));
    }
}
