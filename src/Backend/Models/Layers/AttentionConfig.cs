namespace VidKV.AI.Backend.Models.Layers;

/// <summary>The shape of an <see cref="Attention"/> module and the names of its projections.</summary>
/// <param name="HiddenSize">Width of the input and output.</param>
/// <param name="NumHeads">Query heads.</param>
/// <param name="NumKeyValueHeads">Key-value heads (fewer than <paramref name="NumHeads"/> for grouped-query attention).</param>
/// <param name="HeadDim">Per-head dimension.</param>
internal sealed record AttentionConfig(int HiddenSize, int NumHeads, int NumKeyValueHeads, int HeadDim)
{
    /// <summary>Whether q_proj, k_proj and v_proj have biases.</summary>
    public bool QkvBias { get; init; } = true;

    /// <summary>Whether the output projection has a bias.</summary>
    public bool OutputBias { get; init; }

    /// <summary>The output projection's tensor name: "o_proj" (decoders) or "out_proj" (CLIP-style vision towers).</summary>
    public string OutputName { get; init; } = "o_proj";
}
