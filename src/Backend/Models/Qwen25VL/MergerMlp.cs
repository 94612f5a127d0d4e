using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>The merger's nn.Sequential(Linear, GELU, Linear): its linear layers are named "0" and "2" as in the checkpoints.</summary>
internal sealed class MergerMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer _first;
    private readonly LinearLayer _second;

    public MergerMlp(long merged, long output, ScalarType dtype, Device device)
        : base(nameof(MergerMlp))
    {
        _first = new LinearLayer(merged, merged, true, dtype, device);
        _second = new LinearLayer(merged, output, true, dtype, device);
        register_module("0", _first);
        register_module("2", _second);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _second.forward(nn.functional.gelu(_first.forward(x))).MoveToOuterDisposeScope();
    }
}
