using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>Views a [..., tokens, channels] tensor as quantization groups.</summary>
internal static class GroupLayout
{
    /// <summary>
    /// Returns a view whose reduction dimension (the returned <c>dim</c>) holds one group:
    /// per-channel [..., N/G, G, C] reduced over -2; per-token [..., N, C/G, G] reduced over -1.
    /// </summary>
    public static (Tensor Grouped, long Dim) Group(Tensor x, QuantizationAxis axis, int groupSize)
    {
        if (x.dim() < 2)
        {
            throw new ArgumentException($"Expected a tensor of shape [..., tokens, channels]; got rank {x.dim()}.", nameof(x));
        }

        long n = x.shape[^2], c = x.shape[^1];
        var lead = x.shape[..^2];
        if (axis == QuantizationAxis.PerChannel)
        {
            // A per-channel group of one token would be silently lossless: never accept a partial group.
            if (n % groupSize != 0)
            {
                throw new ArgumentException($"Per-channel quantization needs a whole number of {groupSize}-token groups; got {n} tokens.", nameof(x));
            }

            return (x.reshape(lead.Concat(new[] { n / groupSize, (long)groupSize, c }).ToArray()), -2);
        }

        if (c % groupSize != 0)
        {
            throw new ArgumentException($"Per-token quantization needs a whole number of {groupSize}-channel groups; got {c} channels.", nameof(x));
        }

        return (x.reshape(lead.Concat(new[] { n, c / groupSize, (long)groupSize }).ToArray()), -1);
    }
}
