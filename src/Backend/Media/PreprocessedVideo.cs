using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>Frames sampled from a video and already preprocessed for the vision tower.</summary>
/// <remarks>Owns <see cref="PixelValues"/>; dispose to free it.</remarks>
public sealed class PreprocessedVideo : IDisposable
{
    /// <summary>Creates the result; takes ownership of <paramref name="pixelValues"/>.</summary>
    /// <param name="pixelValues">float32 [F, 3, S, S].</param>
    /// <param name="timestamps">Each frame's presentation time.</param>
    /// <param name="sourceIndices">Each frame's index in the source (-1 where unknown).</param>
    /// <param name="info">What the source holds.</param>
    public PreprocessedVideo(Tensor pixelValues, IReadOnlyList<TimeSpan> timestamps, IReadOnlyList<long> sourceIndices, MediaInfo info)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        ArgumentNullException.ThrowIfNull(timestamps);
        ArgumentNullException.ThrowIfNull(sourceIndices);
        ArgumentNullException.ThrowIfNull(info);
        PixelValues = pixelValues;
        Timestamps = timestamps;
        SourceIndices = sourceIndices;
        Info = info;
    }

    /// <summary>
    /// float32 [F, 3, S, S]: resized, rescaled and normalized as the checkpoint's video processor says
    /// (<see cref="Vision.VideoFramePreprocessor"/>), in the layout of transformers' <c>pixel_values_videos[0]</c>.
    /// </summary>
    public Tensor PixelValues { get; }

    /// <summary>Each frame's presentation time from the start of the media, ascending.</summary>
    public IReadOnlyList<TimeSpan> Timestamps { get; }

    /// <summary>Each frame's index in the source.</summary>
    public IReadOnlyList<long> SourceIndices { get; }

    /// <summary>What the source holds.</summary>
    public MediaInfo Info { get; }

    /// <inheritdoc />
    public void Dispose() => PixelValues.Dispose();
}
