using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Generation;

/// <summary>Semantic token protection scores of a prompt's video tokens.</summary>
internal static class PromptImportance
{
    /// <summary>
    /// Scores for a prompt's embeddings [1, T, D]: each video token's mean dot product with the embeddings of the text after
    /// that video; NaN for every other token.
    /// </summary>
    public static Tensor Scores(Tensor embeds, IReadOnlyList<(int Start, int Length)> videoSpans)
    {
        ArgumentNullException.ThrowIfNull(embeds);
        ArgumentNullException.ThrowIfNull(videoSpans);
        using var scope = NewDisposeScope();
        long t = embeds.shape[1];
        var scores = full(t, Scalars.NaN, ScalarType.Float32, embeds.device);
        foreach (var (start, length) in videoSpans)
        {
            long after = start + length;
            if (after >= t)
            {
                continue;
            }

            var visual = embeds.narrow(1, start, length);
            var text = embeds.narrow(1, after, t - after);
            scores.narrow(0, start, length).copy_(SemanticTokenProtection.Score(visual, text)[0]);
        }

        return scores.MoveToOuterDisposeScope();
    }
}
