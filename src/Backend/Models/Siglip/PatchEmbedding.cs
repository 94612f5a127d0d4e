using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>A convolution with kernel and stride equal to the patch size.</summary>
internal sealed class PatchEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long _patch;

    public PatchEmbedding(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(PatchEmbedding))
    {
        _patch = c.PatchSize;
        weight = new Parameter(empty(new long[] { c.HiddenSize, c.NumChannels, c.PatchSize, c.PatchSize }, dtype, device), requires_grad: false);
        bias = new Parameter(empty(new long[] { c.HiddenSize }, dtype, device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    public override Tensor forward(Tensor pixels)
        => nn.functional.conv2d(pixels.to(weight.dtype), weight, bias, new[] { _patch, _patch }, new[] { 0L, 0L }, new[] { 1L, 1L }, 1);
}
