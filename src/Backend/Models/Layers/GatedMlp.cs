using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>SwiGLU MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
internal sealed class GatedMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer gate_proj;
    private readonly LinearLayer up_proj;
    private readonly LinearLayer down_proj;
    private readonly FusedProjection _gateUp; // gate and up as one projection, made when the CUDA layer kernels first serve this module

    public GatedMlp(long hiddenSize, long intermediateSize, bool bias, ScalarType dtype, Device device)
        : base(nameof(GatedMlp))
    {
        gate_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        up_proj = new LinearLayer(hiddenSize, intermediateSize, bias, dtype, device);
        down_proj = new LinearLayer(intermediateSize, hiddenSize, bias, dtype, device);
        register_module(nameof(gate_proj), gate_proj);
        register_module(nameof(up_proj), up_proj);
        register_module(nameof(down_proj), down_proj);
        _gateUp = new FusedProjection(gate_proj, up_proj);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (UsesLayerKernels(x))
        {
            return down_proj.forward(GatedUp(x)).MoveToOuterDisposeScope();
        }

        bool tracked = is_grad_enabled() && gate_proj.Weight.requires_grad;
        return InPlace.ByRowChunks(x, 2 * gate_proj.Weight.size(0), down_proj.Weight.size(0), tracked, Forward).MoveToOuterDisposeScope(); // gate and up
    }

    /// <summary>
    /// <paramref name="residual"/> + <see cref="forward"/>(<paramref name="x"/>), into <paramref name="residual"/> (a temporary of
    /// the caller) at inference; with the CUDA layer kernels and no down_proj bias the add is folded into down_proj.
    /// </summary>
    public Tensor ForwardAddTo(Tensor residual, Tensor x)
    {
        using var scope = NewDisposeScope();
        if (down_proj.Bias is null && UsesLayerKernels(x))
        {
            return Attention.AddProjected(residual, GatedUp(x), down_proj.Weight).MoveToOuterDisposeScope();
        }

        return InPlace.Add(residual, forward(x)).MoveToOuterDisposeScope();
    }

    /// <summary>silu(gate_proj(x)) · up_proj(x) from the fused projection (over two-dimensional rows) and one kernel.</summary>
    private Tensor GatedUp(Tensor x)
    {
        var shape = x.shape;
        var rows = LayerKernels.SiluMul(_gateUp.Forward(x.reshape(-1, shape[^1])));
        shape[^1] = rows.size(1);
        return rows.view(shape);
    }

    /// <summary>Whether the CUDA layer kernels serve x; the first time, gate_proj and up_proj are fused into one projection.</summary>
    private bool UsesLayerKernels(Tensor x)
    {
        if (!LayerKernels.Applies(x, gate_proj.Weight))
        {
            return false;
        }

        _gateUp.Ensure();
        return true;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gateUp.Dispose();
        }

        base.Dispose(disposing);
    }

    private Tensor Forward(Tensor x)
    {
        var gate = gate_proj.forward(x);
        var up = up_proj.forward(x);
        return down_proj.forward(gate.requires_grad || up.requires_grad ? nn.functional.silu(gate) * up : nn.functional.silu(gate, inplace: true).mul_(up));
    }
}
