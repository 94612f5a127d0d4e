using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// patch_embed.proj: a Conv3d without bias whose kernel equals its stride (temporal x patch x patch), applied to flattened
/// patches [N, C·T·P·P]; as each patch is one kernel window, it is a matrix product with the kernel flattened.
/// </summary>
internal sealed class PatchEmbedding3d : nn.Module<Tensor, Tensor>
{
    private readonly ConvWeight proj;

    public PatchEmbedding3d(Qwen25VLVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(PatchEmbedding3d))
    {
        proj = new ConvWeight(new long[] { c.HiddenSize, c.InChannels, c.TemporalPatchSize, c.PatchSize, c.PatchSize }, dtype, device);
        register_module(nameof(proj), proj);
    }

    /// <summary>Values per patch: C·T·P·P.</summary>
    public long PatchValues => proj.Weight.shape.Skip(1).Aggregate(1L, (a, b) => a * b);

    public override Tensor forward(Tensor patches)
    {
        using var scope = NewDisposeScope();
        var w = proj.Weight;
        return nn.functional.linear(patches.to(w.dtype), w.view(w.shape[0], -1)).MoveToOuterDisposeScope();
    }

    /// <summary>Holds the kernel as "weight".</summary>
    private sealed class ConvWeight : nn.Module
    {
        private readonly Parameter weight;

        public ConvWeight(long[] shape, ScalarType dtype, Device device)
            : base(nameof(ConvWeight))
        {
            weight = new Parameter(empty(shape, dtype, device), requires_grad: false);
            register_parameter(nameof(weight), weight);
        }

        public Tensor Weight => weight;
    }
}
