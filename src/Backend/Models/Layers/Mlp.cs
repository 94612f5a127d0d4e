using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Two-layer MLP of CLIP-style encoders: fc2(gelu_tanh(fc1(x))).</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer fc1;
    private readonly LinearLayer fc2;

    public Mlp(long hiddenSize, long intermediateSize, ScalarType dtype, Device device)
        : base(nameof(Mlp))
    {
        fc1 = new LinearLayer(hiddenSize, intermediateSize, true, dtype, device);
        fc2 = new LinearLayer(intermediateSize, hiddenSize, true, dtype, device);
        register_module(nameof(fc1), fc1);
        register_module(nameof(fc2), fc2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        bool tracked = is_grad_enabled() && fc1.Weight.requires_grad;
        return InPlace.ByRowChunks(x, fc1.Weight.size(0), fc2.Weight.size(0), tracked, Forward).MoveToOuterDisposeScope();
    }

    private Tensor Forward(Tensor x)
    {
        var a = fc1.forward(x);
        return fc2.forward(a.requires_grad ? nn.functional.gelu(a, GELU.Approximate.tanh) : a.gelu_(GELU.Approximate.tanh));
    }
}
