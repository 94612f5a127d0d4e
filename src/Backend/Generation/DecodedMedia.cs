using static TorchSharp.torch;

namespace VidKV.AI.Backend.Generation;

/// <summary>A request's media decoded for the model: each video's frames and each image, in the family's own input form.</summary>
/// <param name="Videos">Each video's frames.</param>
/// <param name="Images">Each image.</param>
internal sealed record DecodedMedia(IReadOnlyList<Tensor> Videos, IReadOnlyList<Tensor> Images)
{
    /// <summary>
    /// The rate each video's frames were sampled at (frames per second), for families whose positions follow time;
    /// <see langword="null"/> when the family does not use it.
    /// </summary>
    public IReadOnlyList<double>? VideoFrameRates { get; init; }
}
