using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Semantic token protection (STP): the visual tokens most related to the question keep their values at
/// higher precision. A token's score is the mean raw dot product of its input embedding with the input
/// embeddings of the text that follows the video; the top <see cref="Fraction"/> of scored tokens are protected.
/// </summary>
public sealed class SemanticTokenProtection
{
    /// <summary>Creates the selector.</summary>
    /// <param name="fraction">Share of scored tokens to protect, in (0, 1); the paper uses 0.2.</param>
    /// <param name="groupSize">Protected tokens are quantized per channel, so their count is rounded down to a multiple of this.</param>
    public SemanticTokenProtection(double fraction = 0.2, int groupSize = 32)
    {
        if (!(fraction > 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The protected fraction must lie in (0, 1); the paper uses 0.2.");
        }

        if (groupSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "The group size must be positive.");
        }

        Fraction = fraction;
        GroupSize = groupSize;
    }

    /// <summary>Share of scored tokens protected.</summary>
    public double Fraction { get; }

    /// <summary>Protected counts are multiples of this.</summary>
    public int GroupSize { get; }

    /// <summary>
    /// Scores visual tokens: mean over text tokens of the raw dot product of embeddings.
    /// </summary>
    /// <param name="visual">Visual input embeddings [B, Nv, E] (the projector's output).</param>
    /// <param name="text">Input embeddings of the text after the video [B, Nt, E], Nt &gt;= 1.</param>
    /// <returns>float32 scores [B, Nv].</returns>
    public static Tensor Score(Tensor visual, Tensor text)
    {
        ArgumentNullException.ThrowIfNull(visual);
        ArgumentNullException.ThrowIfNull(text);
        if (visual.dim() != 3 || text.dim() != 3 || visual.shape[0] != text.shape[0] || visual.shape[2] != text.shape[2] || text.shape[1] == 0)
        {
            throw new ArgumentException($"Expected visual [B, Nv, E] and text [B, Nt>=1, E] embeddings; got [{string.Join(", ", visual.shape)}] and [{string.Join(", ", text.shape)}].");
        }

        using var scope = NewDisposeScope();
        var scores = matmul(visual.to(ScalarType.Float32), text.to(ScalarType.Float32).transpose(1, 2)).mean(new[] { 2L });
        return scores.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Picks the protected token positions: per batch item, the highest-scoring
    /// <c>floor(Fraction·eligible / G)·G</c> tokens, where eligible tokens have a finite score (give NaN or
    /// -infinity to tokens that are not visual). Returns ascending int64 positions [B, k], or
    /// <see langword="null"/> when k is 0.
    /// </summary>
    public Tensor? SelectProtected(Tensor scores)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.dim() != 2)
        {
            throw new ArgumentException($"Importance scores must be [B, N]; got rank {scores.dim()}.", nameof(scores));
        }

        using var scope = NewDisposeScope();
        var s = scores.to(ScalarType.Float32);
        var finite = s.isfinite();
        long eligible = finite.sum(new[] { 1L }).min().item<long>();
        long k = (long)Math.Floor(Fraction * eligible / GroupSize) * GroupSize;
        if (k == 0)
        {
            return null;
        }

        var ranked = s.masked_fill(finite.logical_not(), Scalars.NegativeInfinity);
        var top = ranked.sort(1, true, true).Indices.narrow(1, 0, k);
        return top.sort(1, false, true).Values.MoveToOuterDisposeScope();
    }
}
