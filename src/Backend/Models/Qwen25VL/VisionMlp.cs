using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>Qwen2-VL's vision MLP: fc2(quick_gelu(fc1(x))), quick_gelu(x) = x·sigmoid(1.702·x).</summary>
internal sealed class VisionMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer fc1;
    private readonly LinearLayer fc2;

    public VisionMlp(long dim, long hidden, ScalarType dtype, Device device)
        : base(nameof(VisionMlp))
    {
        fc1 = new LinearLayer(dim, hidden, true, dtype, device);
        fc2 = new LinearLayer(hidden, dim, true, dtype, device);
        register_module(nameof(fc1), fc1);
        register_module(nameof(fc2), fc2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var factor = 1.702.ToScalar();
        var h = fc1.forward(x);
        return fc2.forward(h * h.mul(factor).sigmoid()).MoveToOuterDisposeScope();
    }
}
