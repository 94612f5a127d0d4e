using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>SwiGLU MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
internal sealed class GatedMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer gate_proj;
    private readonly LinearLayer up_proj;
    private readonly LinearLayer down_proj;

    public GatedMlp(long hiddenSize, long intermediateSize, bool bias, ScalarType dtype, Device device)
        : base(nameof(GatedMlp))
    {
        gate_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        up_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        down_proj = new LinearLayer(intermediateSize, hiddenSize, bias, dtype, device);
        register_module(nameof(gate_proj), gate_proj);
        register_module(nameof(up_proj), up_proj);
        register_module(nameof(down_proj), down_proj);
    }

    /// <summary>Rows (tokens) per pass of a long input: the intermediate activations of a chunk stay a few MB.</summary>
    internal const long ChunkRows = 1024;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long rows = x.NumberOfElements / x.shape[^1];
        if (rows <= ChunkRows || x.requires_grad || x.dim() < 2)
        {
            return Forward(x).MoveToOuterDisposeScope();
        }

        // A long prefill in chunks of rows: the same products, without [T, intermediate] temporaries of hundreds of MB.
        var flat = x.reshape(rows, x.shape[^1]);
        var output = empty(new[] { rows, down_proj.Weight.shape[0] }, x.dtype, x.device);
        for (long start = 0; start < rows; start += ChunkRows)
        {
            using var chunkScope = NewDisposeScope();
            long length = Math.Min(ChunkRows, rows - start);
            output.narrow(0, start, length).copy_(Forward(flat.narrow(0, start, length)));
        }

        var shape = x.shape;
        shape[^1] = output.shape[1];
        return output.view(shape).MoveToOuterDisposeScope();
    }

    private Tensor Forward(Tensor x)
    {
        var gate = gate_proj.forward(x);
        var up = up_proj.forward(x);
        return down_proj.forward(gate.requires_grad || up.requires_grad ? nn.functional.silu(gate) * up : nn.functional.silu(gate, inplace: true).mul_(up));
    }
}
