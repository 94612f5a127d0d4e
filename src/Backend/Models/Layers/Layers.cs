using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

// Minimal layers whose parameters start empty (a checkpoint fills them; no random initialization of billions of
// weights) and whose parameter names equal the Hugging Face tensor names.

/// <summary>y = x Wᵀ + b.</summary>
internal sealed class LinearLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;

    public LinearLayer(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device)
        : base(nameof(LinearLayer))
    {
        weight = new Parameter(empty(new[] { outFeatures, inFeatures }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        if (hasBias)
        {
            bias = new Parameter(empty(new[] { outFeatures }, dtype, device), requires_grad: false);
            register_parameter(nameof(bias), bias);
        }
    }

    public Tensor Weight => weight;

    public override Tensor forward(Tensor input) => nn.functional.linear(input, weight, bias);
}

/// <summary>Token embedding table.</summary>
internal sealed class EmbeddingLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public EmbeddingLayer(long count, long dim, ScalarType dtype, Device device)
        : base(nameof(EmbeddingLayer))
    {
        weight = new Parameter(empty(new[] { count, dim }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
    }

    public Tensor Weight => weight;

    public override Tensor forward(Tensor ids) => weight.index_select(0, ids.reshape(-1)).reshape(ids.shape.Append(weight.shape[1]).ToArray());
}

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

    public override Tensor forward(Tensor input) => nn.functional.layer_norm(input, new[] { weight.shape[0] }, weight, bias, _eps);
}

/// <summary>Qwen2's RMSNorm: normalized in float32, scaled by the weight in the input's type.</summary>
internal sealed class RmsNormLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Scalar _eps;

    public RmsNormLayer(long dim, double eps, ScalarType dtype, Device device)
        : base(nameof(RmsNormLayer))
    {
        weight = new Parameter(empty(new[] { dim }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        _eps = eps;
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var normed = x * Scalars.Add(x.mul(x).mean(new[] { -1L }, keepdim: true), _eps).rsqrt();
        return (weight * normed.to(input.dtype)).MoveToOuterDisposeScope();
    }
}
