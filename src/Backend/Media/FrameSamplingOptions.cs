using System.Globalization;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Which frames to take from a video: <see cref="FrameCount"/> frames spread uniformly over the video (the default, as
/// LLaVA-OneVision is evaluated), or, when <see cref="FramesPerSecond"/> is set, frames at that rate (at most
/// <see cref="MaxFrames"/>, spread uniformly when there would be more); optionally only between <see cref="Start"/>
/// and <see cref="End"/>.
/// </summary>
/// <remarks>
/// Uniform sampling takes frame indices <c>np.linspace(first, last, FrameCount).astype(int)</c> over the frames in
/// range. A video with fewer frames than asked for returns each of its frames once, so fewer frames come back: never
/// an error, never a repeated frame. Options are immutable; <see cref="Validate"/> is called by every source.
/// </remarks>
public sealed record FrameSamplingOptions
{
    /// <summary>Frames to take uniformly (1 to 1024). Default 32.</summary>
    public int FrameCount { get; init; } = 32;

    /// <summary>Sampling rate instead of a fixed count (greater than 0, at most 240); <see langword="null"/> for uniform.</summary>
    public double? FramesPerSecond { get; init; }

    /// <summary>Most frames in frames-per-second mode (1 to 1024). Default 64.</summary>
    public int MaxFrames { get; init; } = 64;

    /// <summary>Start of the sampled range (inclusive: frames shown from this time on); <see langword="null"/> for the beginning.</summary>
    public TimeSpan? Start { get; init; }

    /// <summary>End of the sampled range (exclusive: frames that start before it); <see langword="null"/> for the end of the media.</summary>
    public TimeSpan? End { get; init; }

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        if (FrameCount is < 1 or > 1024)
        {
            throw new ArgumentException($"FrameCount is {FrameCount}; allowed: 1 to 1024.");
        }

        if (FramesPerSecond is { } fps && !(fps > 0 && fps <= 240))
        {
            throw new ArgumentException($"FramesPerSecond is {fps.ToString(CultureInfo.InvariantCulture)}; allowed: greater than 0, at most 240.");
        }

        if (MaxFrames is < 1 or > 1024)
        {
            throw new ArgumentException($"MaxFrames is {MaxFrames}; allowed: 1 to 1024.");
        }

        if (Start is { } s && s < TimeSpan.Zero)
        {
            throw new ArgumentException($"Start is {s}; allowed: zero or later.");
        }

        if (Start is { } a && End is { } b && b <= a)
        {
            throw new ArgumentException($"End ({b}) must be after Start ({a}).");
        }
    }
}
