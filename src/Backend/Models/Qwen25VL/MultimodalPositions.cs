using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The 3-D position ids of a prompt (transformers 5.17's <c>get_rope_index</c> of Qwen2-VL and Qwen2.5-VL): text tokens
/// count up on all three axes; the tokens of an image or video get (time, row, column) positions on its merged grid
/// offset by the position it starts at, after which the text goes on max(rows, columns) further. For Qwen2.5-VL a
/// video's time axis advances <c>tokens_per_second · int(second_per_grid_t)</c> per temporal patch; Qwen2-VL's by 1.
/// </summary>
internal static class MultimodalPositions
{
    /// <summary>Positions [3, T] (int64) and the position of the token after the prompt (max + 1).</summary>
    /// <param name="ids">The prompt's token ids (placeholders expanded).</param>
    /// <param name="config">The model's configuration (token ids, merge size, tokens per second).</param>
    /// <param name="visuals">The prompt's images and videos in order of appearance.</param>
    /// <exception cref="ArgumentException">The placeholders do not match the visuals.</exception>
    public static (Tensor Positions, long Next) Compute(IReadOnlyList<int> ids, Qwen25VLConfig config, IReadOnlyList<VisualInput> visuals)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(visuals);
        int n = ids.Count;
        var rows = new long[3 * n];
        int merge = config.Vision.SpatialMergeSize;
        long current = 0;
        int visual = 0;
        for (int i = 0; i < n;)
        {
            int type = TypeOf(ids[i], config);
            int end = i + 1;
            while (end < n && TypeOf(ids[end], config) == type)
            {
                end++;
            }

            if (type == 0)
            {
                for (int k = i; k < end; k++)
                {
                    rows[k] = rows[n + k] = rows[(2 * n) + k] = current++;
                }

                i = end;
                continue;
            }

            // One image or video: its tokens (consecutive runs of the same kind hold one input each, as the chat
            // template separates them with <|vision_end|><|vision_start|>).
            if (visual >= visuals.Count || visuals[visual].IsVideo != (type == 2))
            {
                throw new ArgumentException($"The prompt's {(type == 2 ? "video" : "image")} placeholders at token {i} have no matching {(type == 2 ? "video" : "image")} input.", nameof(visuals));
            }

            var input = visuals[visual++];
            var g = input.Grid;
            int lh = g.H / merge, lw = g.W / merge;
            if (end - i != g.T * lh * lw)
            {
                throw new ArgumentException($"The prompt has {end - i} placeholder tokens at token {i} but the {(input.IsVideo ? "video" : "image")}'s grid {g.T}x{g.H}x{g.W} gives {g.T * lh * lw}.", nameof(visuals));
            }

            long interval = input.IsVideo && config.Vision.Qwen25 ? (long)config.Vision.TokensPerSecond * (long)Math.Truncate(input.SecondsPerGrid) : 1;
            int k2 = i;
            for (int t = 0; t < g.T; t++)
            {
                for (int y = 0; y < lh; y++)
                {
                    for (int x = 0; x < lw; x++, k2++)
                    {
                        rows[k2] = current + (t * interval);
                        rows[n + k2] = current + y;
                        rows[(2 * n) + k2] = current + x;
                    }
                }
            }

            current += Math.Max(lh, lw);
            i = end;
        }

        if (visual != visuals.Count)
        {
            throw new ArgumentException($"The prompt has placeholders for {visual} images and videos but {visuals.Count} were given.", nameof(visuals));
        }

        long next = n == 0 ? 0 : rows.Max() + 1;
        return (tensor(rows).view(3, n), next);
    }

    private static int TypeOf(int id, Qwen25VLConfig config) => id == config.ImageTokenId ? 1 : id == config.VideoTokenId ? 2 : 0;
}
