using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>Holds the encoder layers under the name "layers".</summary>
internal sealed class SiglipEncoder : nn.Module
{
    private readonly ModuleList<VisionEncoderLayer> layers;
    private readonly VisionEncoderLayer[] _layers;

    public SiglipEncoder(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipEncoder))
    {
        _layers = Enumerable.Range(0, c.NumLayers).Select(_ => new VisionEncoderLayer(Attention(c), c.IntermediateSize, c.LayerNormEps, dtype, device)).ToArray();
        layers = new ModuleList<VisionEncoderLayer>(_layers);
        register_module(nameof(layers), layers);
    }

    public IReadOnlyList<VisionEncoderLayer> Layers => _layers;

    /// <summary>SigLIP's attention: as many key-value heads as query heads, biases on every projection, "out_proj".</summary>
    private static AttentionConfig Attention(SiglipVisionConfig c)
        => new(c.HiddenSize, c.NumHeads, c.NumHeads, c.HiddenSize / c.NumHeads) { QkvBias = true, OutputBias = true, OutputName = "out_proj" };
}
