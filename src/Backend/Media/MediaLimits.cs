using System.Globalization;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// What one request's media may cost, checked before the memory or time is spent: the encoded size
/// (<see cref="MaxBytes"/>, for files read by path as for bytes), the declared width, height and frame count (read from
/// headers, before any pixel is decoded), the pixels decoded in all (<see cref="MaxDecodedPixels"/>, summed over a
/// request's videos and images) and the wall-clock time of probing and decoding (<see cref="DecodeTimeout"/>).
/// </summary>
/// <remarks>
/// <para>
/// The defaults suit a server: frames up to 7680 pixels a side (8K UHD; a declared 8192x8192 is refused), a million
/// frames (about 9 hours at 30 fps), 2^31 decoded pixels (1,024 frames of 1080p, or 64 frames of 8K), 512 MiB of encoded
/// bytes and 2 minutes. A limit that is exceeded throws <see cref="MediaLimitExceededException"/> naming the media, the
/// limit and its value.
/// </para>
/// <para>
/// <see cref="ChatRequest.Limits"/> carries them to a model, which applies them to the whole request (one pixel budget and
/// one deadline for all its media); <see cref="FrameSources"/> and <see cref="ImageFiles"/> take them per call. Pixels
/// given with <see cref="MediaSource.FromPixels"/> are the caller's and not limited. Immutable and thread-safe.
/// </para>
/// </remarks>
public sealed record MediaLimits
{
    /// <summary>The defaults (see the remarks).</summary>
    public static MediaLimits Default { get; } = new();

    /// <summary>Widest frame or image, in pixels, as its header declares it (after rotation). Default 7680.</summary>
    public int MaxWidth { get; init; } = 7680;

    /// <summary>Tallest frame or image, in pixels, as its header declares it (after rotation). Default 7680.</summary>
    public int MaxHeight { get; init; } = 7680;

    /// <summary>Most frames a video, animation or frame folder may declare. Default 1,000,000.</summary>
    public long MaxFrames { get; init; } = 1_000_000;

    /// <summary>
    /// Most pixels decoded for one request (width x height summed over every frame decoded: the sampled frames of a
    /// video, every frame an animation composites on the way to the sampled ones, each image). Default 2^31.
    /// </summary>
    public long MaxDecodedPixels { get; init; } = 1L << 31;

    /// <summary>Largest encoded media, in bytes, whether given as bytes, a stream or a file path. Default 512 MiB.</summary>
    public long MaxBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>
    /// Longest time probing and decoding may take: for a request, all its media together; for a source opened directly,
    /// opening and each sampling on its own. ffprobe and ffmpeg are killed when it passes. Default 2 minutes.
    /// </summary>
    public TimeSpan DecodeTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        if (MaxWidth < 1)
        {
            throw new ArgumentException($"MediaLimits.MaxWidth is {MaxWidth}; allowed: 1 or more pixels.");
        }

        if (MaxHeight < 1)
        {
            throw new ArgumentException($"MediaLimits.MaxHeight is {MaxHeight}; allowed: 1 or more pixels.");
        }

        if (MaxFrames < 1)
        {
            throw new ArgumentException($"MediaLimits.MaxFrames is {MaxFrames}; allowed: 1 or more.");
        }

        if (MaxDecodedPixels < 1)
        {
            throw new ArgumentException($"MediaLimits.MaxDecodedPixels is {MaxDecodedPixels}; allowed: 1 or more.");
        }

        if (MaxBytes < 1)
        {
            throw new ArgumentException($"MediaLimits.MaxBytes is {MaxBytes}; allowed: 1 or more bytes.");
        }

        if (DecodeTimeout <= TimeSpan.Zero && DecodeTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException(
                $"MediaLimits.DecodeTimeout is {DecodeTimeout.ToString("c", CultureInfo.InvariantCulture)}; allowed: more than zero, or Timeout.InfiniteTimeSpan for none.");
        }
    }
}
