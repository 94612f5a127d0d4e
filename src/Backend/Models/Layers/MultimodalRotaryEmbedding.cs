using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// Multimodal rotary positions (M-RoPE, Qwen2-VL and Qwen2.5-VL): each token has a temporal, a height and a width
/// position, and the head's rotary frequencies are split into three sections (<c>mrope_section</c>) that turn with one of
/// them each. Text tokens have three equal positions, which gives plain RoPE.
/// </summary>
internal static class MultimodalRotaryEmbedding
{
    /// <summary>
    /// cos and sin [T, headDim] (float32) for positions [3, T]: frequency i (of headDim / 2) turns with the temporal,
    /// height or width position as its section says, then the half is repeated (rotate-half layout), as transformers'
    /// <c>recomposition_frequencies</c> does.
    /// </summary>
    /// <exception cref="ArgumentException">The positions are not [3, T] or the sections do not add up to headDim / 2.</exception>
    public static RotaryTables Tables(Tensor positions, IReadOnlyList<int> sections, int headDim, double theta)
    {
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(sections);
        if (positions.dim() != 2 || positions.size(0) != 3)
        {
            throw new ArgumentException($"Multimodal positions must be [3, T]; got [{string.Join(", ", positions.shape)}].", nameof(positions));
        }

        if (sections.Count != 3 || sections.Sum() != headDim / 2)
        {
            throw new ArgumentException($"mrope sections [{string.Join(", ", sections)}] must be three counts adding up to {headDim / 2}.", nameof(sections));
        }

        using var scope = NewDisposeScope();
        var inverse = Enumerable.Range(0, headDim / 2).Select(i => (float)(1.0 / Math.Pow(theta, 2.0 * i / headDim))).ToArray();
        var invFreq = tensor(inverse, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(2) * invFreq.view(1, 1, -1); // [3, T, hd/2]

        // Frequency i takes the row of its section: the first sections[0] the temporal row, then height, then width.
        var rows = new long[headDim / 2];
        for (int s = 0, i = 0; s < 3; s++)
        {
            for (int k = 0; k < sections[s]; k++)
            {
                rows[i++] = s;
            }
        }

        var index = tensor(rows, device: positions.device).view(1, 1, -1).expand(1, freqs.size(1), -1);
        var picked = freqs.gather(0, index)[0];                                              // [T, hd/2]
        var emb = cat(new[] { picked, picked }, -1);                                         // [T, hd]
        return new RotaryTables(emb.cos().MoveToOuterDisposeScope(), emb.sin().MoveToOuterDisposeScope());
    }
}
