namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// Where each patch of a batch of grids sits for the vision transformer: its 2-D rotary position, the order of the
/// window attention (Qwen2.5-VL) and the runs of patches that attend to each other, as transformers'
/// <c>get_vision_position_ids</c>, <c>get_vision_window_index</c> and <c>get_vision_attention_seqlens</c> compute them.
/// Patches arrive in the processor's order: frame by frame, merge block by merge block (2x2 patches), row-major.
/// </summary>
internal sealed class VisionLayout
{
    private VisionLayout(long[] heights, long[] widths, long[]? windowOrder, List<(long Start, long Length)> frames, List<(long Start, long Length)> windows)
    {
        Heights = heights;
        Widths = widths;
        WindowOrder = windowOrder;
        FrameRuns = frames;
        WindowRuns = windows;
    }

    /// <summary>Each patch's row in its frame (the processor's order).</summary>
    public long[] Heights { get; }

    /// <summary>Each patch's column in its frame (the processor's order).</summary>
    public long[] Widths { get; }

    /// <summary>
    /// For windowed models, the merge units (groups of merge² patches) in window order: entry i is the unit that goes to
    /// place i; <see langword="null"/> when the patches stay in the processor's order.
    /// </summary>
    public long[]? WindowOrder { get; }

    /// <summary>Runs of patches (in the attention order) that attend to each other in full-attention blocks: one per frame.</summary>
    public IReadOnlyList<(long Start, long Length)> FrameRuns { get; }

    /// <summary>Runs of patches (in the attention order) that attend to each other in windowed blocks.</summary>
    public IReadOnlyList<(long Start, long Length)> WindowRuns { get; }

    /// <summary>Computes the layout of <paramref name="grids"/> in order.</summary>
    /// <param name="grids">The grids.</param>
    /// <param name="mergeSize">Patches merged per side.</param>
    /// <param name="windowPatches">Window side in merge units (window_size / merge / patch); 0 for no windows.</param>
    public static VisionLayout Create(IReadOnlyList<VisionGrid> grids, int mergeSize, int windowPatches)
    {
        long total = grids.Sum(g => (long)g.Patches);
        var heights = new long[total];
        var widths = new long[total];
        var frames = new List<(long, long)>();
        long p = 0;
        foreach (var g in grids)
        {
            if (g.H % mergeSize != 0 || g.W % mergeSize != 0)
            {
                throw new ArgumentException($"A grid of {g.H}x{g.W} patches is not a multiple of the merge size {mergeSize}.", nameof(grids));
            }

            for (int t = 0; t < g.T; t++)
            {
                frames.Add((p, (long)g.H * g.W));
                for (int bh = 0; bh < g.H / mergeSize; bh++)
                {
                    for (int bw = 0; bw < g.W / mergeSize; bw++)
                    {
                        for (int mh = 0; mh < mergeSize; mh++)
                        {
                            for (int mw = 0; mw < mergeSize; mw++)
                            {
                                heights[p] = (bh * mergeSize) + mh;
                                widths[p] = (bw * mergeSize) + mw;
                                p++;
                            }
                        }
                    }
                }
            }
        }

        if (windowPatches <= 0)
        {
            return new VisionLayout(heights, widths, null, frames, frames);
        }

        int unit = mergeSize * mergeSize;
        var order = new List<long>((int)(total / unit));
        var windows = new List<(long, long)>();
        long offset = 0, start = 0;
        foreach (var g in grids)
        {
            int lh = g.H / mergeSize, lw = g.W / mergeSize;

            // As transformers pads: a full extra window when the side is already a multiple (it holds nothing).
            int nh = (lh + (windowPatches - (lh % windowPatches))) / windowPatches;
            int nw = (lw + (windowPatches - (lw % windowPatches))) / windowPatches;
            for (int t = 0; t < g.T; t++)
            {
                for (int wy = 0; wy < nh; wy++)
                {
                    for (int wx = 0; wx < nw; wx++)
                    {
                        long count = 0;
                        for (int y = wy * windowPatches; y < Math.Min((wy + 1) * windowPatches, lh); y++)
                        {
                            for (int x = wx * windowPatches; x < Math.Min((wx + 1) * windowPatches, lw); x++)
                            {
                                order.Add(offset + (((long)t * lh + y) * lw) + x);
                                count++;
                            }
                        }

                        if (count > 0)
                        {
                            windows.Add((start, count * unit));
                            start += count * unit;
                        }
                    }
                }
            }

            offset += (long)g.T * lh * lw;
        }

        return new VisionLayout(heights, widths, order.ToArray(), frames, windows);
    }
}
