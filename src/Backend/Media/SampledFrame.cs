using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>One frame taken from a video, with the time it shows.</summary>
/// <param name="Rgb">uint8 [H, W, 3] RGB pixels; the caller owns (and disposes) the tensor.</param>
/// <param name="Timestamp">Presentation time from the start of the media.</param>
/// <param name="SourceIndex">The frame's index in the source, where the source knows it; otherwise -1.</param>
public sealed record SampledFrame(Tensor Rgb, TimeSpan Timestamp, long SourceIndex);
