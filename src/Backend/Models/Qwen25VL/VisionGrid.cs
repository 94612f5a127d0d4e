namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The patch grid of one image or video (<c>grid_thw</c>): <see cref="T"/> temporal patches (pairs of frames) of
/// <see cref="H"/> x <see cref="W"/> patches, each side a multiple of the spatial merge size.
/// </summary>
/// <param name="T">Temporal patches (1 for an image).</param>
/// <param name="H">Patches per column.</param>
/// <param name="W">Patches per row.</param>
public readonly record struct VisionGrid(int T, int H, int W)
{
    /// <summary>Patches in the grid.</summary>
    public int Patches => T * H * W;

    /// <summary>Decoder tokens after the merger (<c>T * H * W / merge²</c>).</summary>
    public int Tokens(int mergeSize) => T * (H / mergeSize) * (W / mergeSize);
}
