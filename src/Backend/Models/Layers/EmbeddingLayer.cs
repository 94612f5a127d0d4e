using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

// Parameters start empty (a checkpoint fills them) and are named as the Hugging Face tensors are.
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

    public override Tensor forward(Tensor ids) => weight.index_select(0, ids.reshape(-1)).reshape(ids.shape.Append(weight.size(1)).ToArray());
}
