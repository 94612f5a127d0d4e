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

    /// <summary>
    /// Puts the weights (and biases) of <paramref name="parts"/> into one tensor, rows in the parts' order, and makes each
    /// part's parameters views of it (no second copy is held): one matrix product then computes every part's output.
    /// </summary>
    /// <exception cref="ArgumentException">Some parts have a bias and others not, or their input widths differ.</exception>
    internal static (Tensor Weight, Tensor? Bias) Fuse(params LinearLayer[] parts)
    {
        bool biased = parts[0].bias is not null;
        if (parts.Any(p => (p.bias is not null) != biased || p.weight.shape[1] != parts[0].weight.shape[1]))
        {
            throw new ArgumentException("Only projections of the same input width, all with or all without a bias, can be fused.", nameof(parts));
        }

        using var noGrad = no_grad();
        // Held by the caller for the module's life, outside any dispose scope the first call runs in.
        var weight = cat(parts.Select(p => (Tensor)p.weight).ToArray(), 0).DetachFromDisposeScope();
        var fusedBias = biased ? cat(parts.Select(p => (Tensor)p.bias!).ToArray(), 0).DetachFromDisposeScope() : null;
        long row = 0;
        foreach (var p in parts)
        {
            long n = p.weight.shape[0];
            using (var view = weight.narrow(0, row, n))
            {
                SetTo(p.weight, view);
            }

            if (fusedBias is not null)
            {
                using var view = fusedBias.narrow(0, row, n);
                SetTo(p.bias!, view);
            }

            row += n;
        }

        return (weight, fusedBias);
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
