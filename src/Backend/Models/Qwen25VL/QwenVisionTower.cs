using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The vision transformer of Qwen2.5-VL and Qwen2-VL (<c>visual</c>): 3-D patch embedding, blocks with 2-D rotary
/// positions (window attention in Qwen2.5-VL's blocks outside <c>fullatt_block_indexes</c>), and the 2x2 merger. Each
/// grid's tokens come out in the processor's order (frame, row, column of merge blocks).
/// </summary>
internal sealed class QwenVisionTower : nn.Module
{
    private readonly PatchEmbedding3d patch_embed;
    private readonly ModuleList<VisionBlock> blocks;
    private readonly PatchMerger merger;
    private readonly Qwen25VLVisionConfig _config;
    private readonly HashSet<int> _fullAttention;

    public QwenVisionTower(Qwen25VLVisionConfig c, ScalarType dtype, Device device)
        : base(nameof(QwenVisionTower))
    {
        _config = c;
        _fullAttention = new HashSet<int>(c.FullAttentionBlocks);
        patch_embed = new PatchEmbedding3d(c, dtype, device);
        blocks = new ModuleList<VisionBlock>(Enumerable.Range(0, c.Depth).Select(_ => new VisionBlock(c, dtype, device)).ToArray());
        merger = new PatchMerger(c, dtype, device);
        register_module(nameof(patch_embed), patch_embed);
        register_module(nameof(blocks), blocks);
        register_module(nameof(merger), merger);
    }

    /// <summary>Values per patch row of the pixel input (C·T·P·P).</summary>
    public long PatchValues => patch_embed.PatchValues;

    /// <summary>
    /// Features [Σ tokens, D_out] of the patches [Σ patches, C·T·P·P] of <paramref name="grids"/>, in order; each grid gives
    /// T·H·W / merge² rows. <paramref name="blockOutputs"/>, when given, receives each block's output (in attention order).
    /// </summary>
    public Tensor Forward(Tensor patches, IReadOnlyList<VisionGrid> grids, List<Tensor>? blockOutputs = null)
    {
        using var scope = NewDisposeScope();
        var c = _config;
        long total = grids.Sum(g => (long)g.Patches);
        if (patches.dim() != 2 || patches.shape[0] != total || patches.shape[1] != PatchValues)
        {
            throw new ArgumentException(
                $"Vision input must be [{total}, {PatchValues}] for grids {string.Join(", ", grids.Select(g => $"{g.T}x{g.H}x{g.W}"))}; got [{string.Join(", ", patches.shape)}].",
                nameof(patches));
        }

        int windowPatches = c.Qwen25 ? c.WindowSize / c.SpatialMergeSize / c.PatchSize : 0;
        var layout = VisionLayout.Create(grids, c.SpatialMergeSize, windowPatches);
        var device = patch_embed.parameters().First().device;
        var h = patch_embed.forward(patches.to(device));
        var rotary = Rotary(layout, device);
        int unit = c.SpatialMergeSize * c.SpatialMergeSize;
        Tensor? order = null;
        if (layout.WindowOrder is { } windowOrder)
        {
            order = tensor(windowOrder, device: device);
            Tensor Permute(Tensor x) => x.view(total / unit, unit, -1).index_select(0, order).reshape(total, -1);
            h = Permute(h);
            rotary = new RotaryTables(Permute(rotary.Cos), Permute(rotary.Sin));
        }

        for (int i = 0; i < blocks.Count; i++)
        {
            bool full = !c.Qwen25 || _fullAttention.Contains(i);
            h = blocks[i].forward(h, rotary, full ? layout.FrameRuns : layout.WindowRuns);
            blockOutputs?.Add(h.MoveToOuterDisposeScope());
        }

        var merged = merger.forward(h);
        if (order is not null)
        {
            merged = merged.index_select(0, order.argsort());
        }

        return merged.MoveToOuterDisposeScope();
    }

    /// <summary>cos and sin [S, hd] of the patches' (row, column) positions: hd/4 frequencies each for row and column, twice.</summary>
    private RotaryTables Rotary(VisionLayout layout, Device device)
    {
        using var scope = NewDisposeScope();
        int quarter = _config.HeadDim / 4;
        int spatial = _config.HeadDim / 2;
        var inverse = Enumerable.Range(0, quarter).Select(i => (float)(1.0 / Math.Pow(_config.RopeTheta, 2.0 * i / spatial))).ToArray();
        var inv = tensor(inverse, device: device).unsqueeze(0);
        var rows = tensor(layout.Heights, device: device).to(ScalarType.Float32).unsqueeze(1) * inv;
        var cols = tensor(layout.Widths, device: device).to(ScalarType.Float32).unsqueeze(1) * inv;
        var freqs = cat(new[] { rows, cols, rows, cols }, 1);
        return new RotaryTables(freqs.cos().MoveToOuterDisposeScope(), freqs.sin().MoveToOuterDisposeScope());
    }
}
