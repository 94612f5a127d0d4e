using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>Frames sampled from a video, as decoded: the input of <see cref="ChatRequest.Videos"/>.</summary>
/// <remarks>Owns <see cref="Frames"/>; dispose to free it.</remarks>
public sealed class SampledVideo : IDisposable
{
    /// <summary>Creates the result; takes ownership of <paramref name="frames"/>.</summary>
    /// <param name="frames">uint8 [F, H, W, 3] RGB.</param>
    /// <param name="timestamps">Each frame's presentation time.</param>
    /// <param name="sourceIndices">Each frame's index in the source (-1 where unknown).</param>
    /// <param name="info">What the source holds.</param>
    public SampledVideo(Tensor frames, IReadOnlyList<TimeSpan> timestamps, IReadOnlyList<long> sourceIndices, MediaInfo info)
    {
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentNullException.ThrowIfNull(timestamps);
        ArgumentNullException.ThrowIfNull(sourceIndices);
        ArgumentNullException.ThrowIfNull(info);
        Frames = frames;
        Timestamps = timestamps;
        SourceIndices = sourceIndices;
        Info = info;
    }

    /// <summary>uint8 [F, H, W, 3] RGB, channels last.</summary>
    public Tensor Frames { get; }

    /// <summary>Each frame's presentation time from the start of the media, ascending.</summary>
    public IReadOnlyList<TimeSpan> Timestamps { get; }

    /// <summary>Each frame's index in the source.</summary>
    public IReadOnlyList<long> SourceIndices { get; }

    /// <summary>What the source holds.</summary>
    public MediaInfo Info { get; }

    /// <inheritdoc />
    public void Dispose() => Frames.Dispose();
}
