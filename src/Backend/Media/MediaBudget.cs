using System.Diagnostics;
using System.Globalization;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// The <see cref="MediaLimits"/> of one request (or one directly opened source) as they are spent: the checks of declared
/// sizes, the pixels still allowed, and the deadline of probing and decoding.
/// </summary>
/// <remarks>Not thread-safe: one request's media are decoded on one thread.</remarks>
internal sealed class MediaBudget
{
    private readonly long? _deadline;
    private long _pixelsLeft;

    /// <summary>Creates a budget.</summary>
    /// <param name="limits">The limits (validated here).</param>
    /// <param name="sharedDeadline">
    /// Whether <see cref="MediaLimits.DecodeTimeout"/> counts from now for everything done with this budget (a request);
    /// otherwise each <see cref="Begin"/> has its own.
    /// </param>
    /// <exception cref="ArgumentException">The limits are invalid.</exception>
    public MediaBudget(MediaLimits limits, bool sharedDeadline)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.Validate();
        Limits = limits;
        _pixelsLeft = limits.MaxDecodedPixels;
        if (sharedDeadline && limits.DecodeTimeout != Timeout.InfiniteTimeSpan)
        {
            _deadline = Stopwatch.GetTimestamp() + (long)(limits.DecodeTimeout.TotalSeconds * Stopwatch.Frequency);
        }
    }

    /// <summary>The limits.</summary>
    public MediaLimits Limits { get; }

    /// <summary>Pixels that may still be decoded.</summary>
    public long PixelsLeft => _pixelsLeft;

    /// <summary>Refuses encoded media longer than <see cref="MediaLimits.MaxBytes"/>.</summary>
    /// <exception cref="MediaLimitExceededException">It is longer.</exception>
    public void CheckBytes(string name, long length, bool atLeast = false)
    {
        if (length > Limits.MaxBytes)
        {
            throw new MediaLimitExceededException(
                $"'{name}' is {(atLeast ? "more than " + N(Limits.MaxBytes) : N(length))} bytes; allowed: at most {N(Limits.MaxBytes)} (MediaLimits.MaxBytes). Nothing was decoded.",
                nameof(MediaLimits.MaxBytes));
        }
    }

    /// <summary>Refuses a declared frame size over <see cref="MediaLimits.MaxWidth"/> or <see cref="MediaLimits.MaxHeight"/>, before decoding.</summary>
    /// <exception cref="MediaLimitExceededException">It is larger.</exception>
    public void CheckSize(string name, long width, long height)
    {
        if (width > Limits.MaxWidth)
        {
            throw new MediaLimitExceededException(
                $"'{name}' declares frames {N(width)}x{N(height)} pixels; allowed: at most {N(Limits.MaxWidth)} wide (MediaLimits.MaxWidth). Nothing was decoded.", nameof(MediaLimits.MaxWidth));
        }

        if (height > Limits.MaxHeight)
        {
            throw new MediaLimitExceededException(
                $"'{name}' declares frames {N(width)}x{N(height)} pixels; allowed: at most {N(Limits.MaxHeight)} high (MediaLimits.MaxHeight). Nothing was decoded.", nameof(MediaLimits.MaxHeight));
        }
    }

    /// <summary>Refuses a declared frame count over <see cref="MediaLimits.MaxFrames"/>, before decoding.</summary>
    /// <exception cref="MediaLimitExceededException">It is larger.</exception>
    public void CheckFrames(string name, long frames)
    {
        if (frames > Limits.MaxFrames)
        {
            throw new MediaLimitExceededException(
                $"'{name}' declares {N(frames)} frames; allowed: at most {N(Limits.MaxFrames)} (MediaLimits.MaxFrames). Nothing was decoded.", nameof(MediaLimits.MaxFrames));
        }
    }

    /// <summary>Takes <paramref name="frames"/> frames of <paramref name="width"/> x <paramref name="height"/> from the pixel budget, before they are decoded.</summary>
    /// <exception cref="MediaLimitExceededException">Fewer pixels are left.</exception>
    public void Charge(string name, long frames, long width, long height)
    {
        long perFrame = width * height; // both capped by MaxWidth and MaxHeight (int), so no overflow
        bool over = frames > 0 && perFrame > 0 && frames > _pixelsLeft / perFrame;
        if (over)
        {
            throw new MediaLimitExceededException(
                $"'{name}' needs {N(frames)} decoded frames of {N(width)}x{N(height)} pixels, {N(frames * (double)perFrame)} pixels; allowed: {N(_pixelsLeft)} more for this request, of {N(Limits.MaxDecodedPixels)} (MediaLimits.MaxDecodedPixels). Sample fewer frames or use smaller media.",
                nameof(MediaLimits.MaxDecodedPixels));
        }

        _pixelsLeft -= frames * perFrame;
    }

    /// <summary>Starts a piece of probing or decoding: a token cancelled by the caller or at the deadline.</summary>
    public MediaOperation Begin(CancellationToken cancellationToken)
    {
        TimeSpan left;
        if (_deadline is { } deadline)
        {
            left = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        }
        else
        {
            left = Limits.DecodeTimeout;
        }

        return new MediaOperation(cancellationToken, left, Limits.DecodeTimeout);
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string N(double value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
