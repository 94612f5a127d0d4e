using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

// Parameters start empty (a checkpoint fills them) and are named as the Hugging Face tensors are.
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

    /// <summary>The bias, or <see langword="null"/>.</summary>
    public Tensor? Bias => bias;

    public override Tensor forward(Tensor input) => nn.functional.linear(input, weight, bias);
}

/// <summary>
/// Several projections of one input (q, k and v; gate and up) as one: their weights (and biases) in one tensor, rows in
/// the parts' order, each part's parameters made views of it (no second copy is held), so that one matrix product computes
/// every part's output. Made on first use and again if the parts' parameters were replaced since (a module moved to
/// another device gets new ones); owned by the module that uses it.
/// </summary>
internal sealed class FusedProjection : IDisposable
{
    private readonly LinearLayer[] _parts;
    private Tensor? _from; // the first part's weight when the fused tensors were made

    public FusedProjection(params LinearLayer[] parts)
    {
        bool biased = parts[0].Bias is not null;
        if (parts.Any(p => (p.Bias is not null) != biased || p.Weight.size(1) != parts[0].Weight.size(1)))
        {
            throw new ArgumentException("Only projections of the same input width, all with or all without a bias, can be fused.", nameof(parts));
        }

        _parts = parts;
    }

    /// <summary>The fused weight [Σ out, in]; valid after <see cref="Ensure"/>.</summary>
    public Tensor Weight { get; private set; } = null!;

    /// <summary>The fused bias, or <see langword="null"/>.</summary>
    public Tensor? Bias { get; private set; }

    /// <summary>Fuses the parts if not yet done for their current parameters.</summary>
    public void Ensure()
    {
        lock (_parts)
        {
            if (_from is not null && ReferenceEquals(_from, _parts[0].Weight))
            {
                return;
            }

            Dispose();
            using var noGrad = no_grad();
            // Held for the module's life, outside any dispose scope the first call runs in.
            var weight = cat(_parts.Select(p => p.Weight).ToArray(), 0).DetachFromDisposeScope();
            var bias = _parts[0].Bias is null ? null : cat(_parts.Select(p => p.Bias!).ToArray(), 0).DetachFromDisposeScope();
            long row = 0;
            foreach (var p in _parts)
            {
                long n = p.Weight.size(0);
                using (var view = weight.narrow(0, row, n))
                {
                    SetTo(p.Weight, view);
                }

                if (bias is not null)
                {
                    using var view = bias.narrow(0, row, n);
                    SetTo(p.Bias!, view);
                }

                row += n;
            }

            (Weight, Bias, _from) = (weight, bias, _parts[0].Weight);
        }
    }

    /// <summary>y = x Wᵀ + b over every part at once.</summary>
    public Tensor Forward(Tensor x) => nn.functional.linear(x, Weight, Bias);

    /// <summary>Releases the fused tensors' handles (the parameters, views of their storage, keep it).</summary>
    public void Dispose()
    {
        Weight?.Dispose();
        Bias?.Dispose();
        (Weight, Bias, _from) = (null!, null, null);
    }

    /// <summary>Makes <paramref name="parameter"/> a view of <paramref name="source"/>'s storage (TorchSharp's set_ returns the same object).</summary>
    private static void SetTo(Tensor parameter, Tensor source)
    {
        var result = parameter.set_(source);
        if (!ReferenceEquals(result, parameter))
        {
            result.Dispose();
        }
    }
}
