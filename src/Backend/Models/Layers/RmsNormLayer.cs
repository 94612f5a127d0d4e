using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

// Parameters start empty (a checkpoint fills them) and are named as the Hugging Face tensors are.
/// <summary>Qwen2's RMSNorm: normalized in float32, scaled by the weight in the input's type.</summary>
internal sealed class RmsNormLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Scalar _eps;
    private readonly double _epsValue;

    public RmsNormLayer(long dim, double eps, ScalarType dtype, Device device)
        : base(nameof(RmsNormLayer))
    {
        weight = new Parameter(empty(new[] { dim }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        _eps = eps;
        _epsValue = eps;
    }

    public override Tensor forward(Tensor input)
    {
        if (input.device_type == DeviceType.CUDA && LayerKernels.Applies(input, weight))
        {
            return LayerKernels.RmsNorm(input, weight, _epsValue);
        }

        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var normed = x * Scalars.Add(x.mul(x).mean(new[] { -1L }, keepdim: true), _eps).rsqrt();
        return (weight * normed.to(input.dtype)).MoveToOuterDisposeScope();
    }
}
