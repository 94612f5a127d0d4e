using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

// Parameters start empty (a checkpoint fills them) and are named as the Hugging Face tensors are.
/// <summary>LayerNorm with weight and bias.</summary>
internal sealed class LayerNormLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double _eps;

    public LayerNormLayer(long dim, double eps, ScalarType dtype, Device device)
        : base(nameof(LayerNormLayer))
    {
        weight = new Parameter(empty(new[] { dim }, dtype, device), requires_grad: false);
        bias = new Parameter(empty(new[] { dim }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
        _eps = eps;
    }

    public override Tensor forward(Tensor input) => nn.functional.layer_norm(input, new[] { weight.size(0) }, weight, bias, _eps);
}
