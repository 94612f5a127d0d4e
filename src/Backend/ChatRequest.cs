using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend;

/// <summary>
/// A conversation and its media: <see cref="Videos"/> fill the <see cref="VideoPart"/>s and <see cref="Images"/> the
/// <see cref="ImagePart"/>s, in order of appearance. The model decodes the media when it runs the request.
/// </summary>
/// <param name="Turns">The conversation.</param>
public sealed record ChatRequest(IReadOnlyList<ChatTurn> Turns)
{
    /// <summary>Each video part's media.</summary>
    public IReadOnlyList<MediaSource> Videos { get; init; } = Array.Empty<MediaSource>();

    /// <summary>Each image part's media.</summary>
    public IReadOnlyList<MediaSource> Images { get; init; } = Array.Empty<MediaSource>();

    /// <summary>Which frames of each video are read (not used for videos given as pixels).</summary>
    public FrameSamplingOptions Sampling { get; init; } = new();

    /// <summary>
    /// What decoding this request's files and bytes may cost, for all of them together: encoded bytes, declared sizes and
    /// frame counts (checked before decoding), decoded pixels and time. Media given as pixels are not limited.
    /// </summary>
    public MediaLimits Limits { get; init; } = MediaLimits.Default;
}
