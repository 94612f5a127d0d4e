using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.LlavaOnevision;

/// <summary>linear_2(gelu(linear_1(x))).</summary>
internal sealed class Projector : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer linear_1;
    private readonly LinearLayer linear_2;

    public Projector(long visionDim, long textDim, bool bias, ScalarType dtype, Device device)
        : base(nameof(Projector))
    {
        linear_1 = new LinearLayer(visionDim, textDim, bias, dtype, device);
        linear_2 = new LinearLayer(textDim, textDim, bias, dtype, device);
        register_module(nameof(linear_1), linear_1);
        register_module(nameof(linear_2), linear_2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return linear_2.forward(nn.functional.gelu(linear_1.forward(x))).MoveToOuterDisposeScope();
    }
}
