using VidKV.AI.Backend.Text;
using static TorchSharp.torch;

namespace VidKV.AI.Backend;

/// <summary>
/// A conversation and its pixels: <see cref="Videos"/> fill the <see cref="VideoPart"/>s and <see cref="Images"/> the
/// <see cref="ImagePart"/>s, in order of appearance.
/// </summary>
/// <param name="Turns">The conversation.</param>
public sealed record ChatRequest(IReadOnlyList<ChatTurn> Turns)
{
    /// <summary>
    /// Each video's frames: uint8 [F, H, W, 3] RGB, or frames already preprocessed for the model, float [F, 3, S, S]
    /// (as <c>VideoFrames.LoadForModel</c> returns them, without holding the decoded frames).
    /// </summary>
    public IReadOnlyList<Tensor> Videos { get; init; } = Array.Empty<Tensor>();

    /// <summary>Each image, uint8 [H, W, 3] RGB.</summary>
    public IReadOnlyList<Tensor> Images { get; init; } = Array.Empty<Tensor>();
}
