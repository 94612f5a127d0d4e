using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>Patch embedding (a stride-p convolution) plus learned position embeddings.</summary>
internal sealed class SiglipEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly PatchEmbedding patch_embedding;
    private readonly EmbeddingLayer position_embedding;

    public SiglipEmbeddings(SiglipVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(SiglipEmbeddings))
    {
        patch_embedding = new PatchEmbedding(c, dtype, device);
        position_embedding = new EmbeddingLayer((long)c.PatchesPerSide * c.PatchesPerSide, c.HiddenSize, dtype, device);
        register_module(nameof(patch_embedding), patch_embedding);
        register_module(nameof(position_embedding), position_embedding);
    }

    /// <summary>pixels [N, C, S, S] -> [N, patches, hidden].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var tokens = patch_embedding.forward(pixels).flatten(2).transpose(1, 2);
        return Scalars.Add(tokens, position_embedding.Weight.unsqueeze(0)).MoveToOuterDisposeScope();
    }
}
