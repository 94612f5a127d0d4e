namespace VidKV.AI.Backend.Media;

/// <summary>
/// A video (or animated image, or sequence of stills) that frames can be sampled from. Implementations decode only
/// the frames they return, and never hold more than a few frames at a time.
/// </summary>
/// <remarks>Not thread-safe. Dispose to release files, processes and temporary copies.</remarks>
public interface IFrameSource : IDisposable
{
    /// <summary>What the source holds.</summary>
    MediaInfo Info { get; }

    /// <summary>
    /// Yields the frames chosen by <paramref name="options"/> in time order. Each frame's tensor belongs to the
    /// caller. Cancellation is checked between frames.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid or select no frame (e.g. a range past the end).</exception>
    /// <exception cref="InvalidDataException">The media is corrupt or truncated where a frame was needed.</exception>
    IEnumerable<SampledFrame> Sample(FrameSamplingOptions options, CancellationToken cancellationToken = default);
}
