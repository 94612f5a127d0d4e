namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The vision transformer of Qwen2.5-VL or Qwen2-VL (<c>vision_config</c>): 3-D patches (<see cref="TemporalPatchSize"/>
/// frames of <see cref="PatchSize"/>² pixels), 2-D rotary positions, and a 2x2 patch merger into the decoder's width.
/// </summary>
public sealed record Qwen25VLVisionConfig
{
    /// <summary>Whether the blocks are Qwen2.5-VL's (RMSNorm, gated SiLU MLP, window attention) rather than Qwen2-VL's (LayerNorm, quick-GELU MLP, full attention).</summary>
    public bool Qwen25 { get; init; } = true;

    /// <summary>Blocks.</summary>
    public int Depth { get; init; }

    /// <summary>Width of the blocks (Qwen2.5-VL <c>hidden_size</c>, Qwen2-VL <c>embed_dim</c>).</summary>
    public int HiddenSize { get; init; }

    /// <summary>MLP inner size (Qwen2.5-VL <c>intermediate_size</c>, Qwen2-VL <c>embed_dim * mlp_ratio</c>).</summary>
    public int IntermediateSize { get; init; }

    /// <summary>Attention heads.</summary>
    public int NumHeads { get; init; }

    /// <summary>Width of the merged features: the decoder's hidden size (Qwen2.5-VL <c>out_hidden_size</c>, Qwen2-VL <c>hidden_size</c>).</summary>
    public int OutHiddenSize { get; init; }

    /// <summary>Input channels.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>Side of a patch in pixels (14).</summary>
    public int PatchSize { get; init; } = 14;

    /// <summary>Frames per patch (2).</summary>
    public int TemporalPatchSize { get; init; } = 2;

    /// <summary>Patches merged per side into one decoder token (2).</summary>
    public int SpatialMergeSize { get; init; } = 2;

    /// <summary>Side of an attention window in pixels (Qwen2.5-VL; 112).</summary>
    public int WindowSize { get; init; }

    /// <summary>Blocks that attend over the whole frame instead of windows (Qwen2.5-VL <c>fullatt_block_indexes</c>).</summary>
    public IReadOnlyList<int> FullAttentionBlocks { get; init; } = Array.Empty<int>();

    /// <summary>Temporal rotary positions per second of video (Qwen2.5-VL; 2).</summary>
    public double TokensPerSecond { get; init; } = 1;

    /// <summary>Base of the 2-D rotary positions.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Per-head dimension.</summary>
    public int HeadDim => HiddenSize / NumHeads;
}
