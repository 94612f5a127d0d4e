using System.Globalization;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Chooses frame indices from <see cref="FrameSamplingOptions"/>, the same way for every kind of source: only the
/// time of each frame differs (index / rate for a video, summed durations for an animation).
/// </summary>
internal static class FrameIndexSampler
{
    /// <summary>Times within this many seconds count as equal (timestamps are rounded in containers).</summary>
    private const double Epsilon = 1e-6;

    /// <summary>
    /// The indices to decode, ascending and distinct. Uniform mode is LLaVA-OneVision's evaluation sampling,
    /// <c>np.linspace(first, last, N).astype(int)</c> over the frames in range; asking for more frames than the range
    /// holds returns each frame once.
    /// </summary>
    /// <param name="frameCount">Frames in the source (at least 1).</param>
    /// <param name="timeOf">Presentation time of frame i in seconds, non-decreasing in i.</param>
    /// <param name="duration">The source's length in seconds (at least the last frame's time).</param>
    /// <param name="options">Validated options.</param>
    /// <param name="source">The source's name, for messages.</param>
    /// <exception cref="ArgumentException">The range selects no frame.</exception>
    public static long[] Select(long frameCount, Func<long, double> timeOf, double duration, FrameSamplingOptions options, string source)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        long first = 0, end = frameCount;
        if (options.Start is { } start)
        {
            first = LowerBound(frameCount, timeOf, start.TotalSeconds);
            if (first >= frameCount)
            {
                throw new ArgumentException(
                    $"Start is {Format(start.TotalSeconds)} but the last frame of '{source}' is at {Format(timeOf(frameCount - 1))} (length {Format(duration)}); choose a Start inside the media.",
                    nameof(options));
            }
        }

        if (options.End is { } stop)
        {
            end = LowerBound(frameCount, timeOf, stop.TotalSeconds);
            if (end <= first)
            {
                throw new ArgumentException(
                    $"No frame of '{source}' lies in [{Format(options.Start?.TotalSeconds ?? 0)}, {Format(stop.TotalSeconds)}): the frame before is at {Format(timeOf(Math.Max(first - 1, 0)))}, the next at {Format(timeOf(first))}. Widen the range.",
                    nameof(options));
            }
        }

        if (options.FramesPerSecond is not { } fps)
        {
            return Linspace(first, end - 1, options.FrameCount);
        }

        double t0 = options.Start?.TotalSeconds ?? Math.Min(0, timeOf(0));
        double t1 = Math.Min(options.End?.TotalSeconds ?? double.PositiveInfinity, Math.Max(duration, timeOf(end - 1) + Epsilon));
        var picked = new List<long>();
        for (long k = 0; ; k++)
        {
            double t = t0 + (k / fps);
            if (t >= t1 - Epsilon)
            {
                break;
            }

            // The frame on screen at time t: the last one that starts at or before it.
            long index = Math.Clamp(LowerBound(frameCount, timeOf, t + (2 * Epsilon)) - 1, first, end - 1);
            if (picked.Count == 0 || picked[^1] != index)
            {
                picked.Add(index);
                if (picked.Count > options.MaxFrames)
                {
                    return Linspace(first, end - 1, options.MaxFrames);
                }
            }

            if (index >= end - 1)
            {
                break; // later times show the last frame in range too: a declared duration far past it costs nothing
            }
        }

        return picked.Count > 0 ? picked.ToArray() : new[] { first };
    }

    /// <summary>
    /// <c>np.linspace(first, last, count).astype(int)</c> with repeated indices removed: the same float64 operations
    /// as numpy (<c>i * step + first</c>, the last value exactly <c>last</c>), truncated toward zero.
    /// </summary>
    public static long[] Linspace(long first, long last, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (count == 1)
        {
            return new[] { first };
        }

        double step = ((double)last - first) / (count - 1);
        var result = new List<long>(count);
        for (int i = 0; i < count; i++)
        {
            long index = i == count - 1 ? last : (long)((i * step) + first);
            if (result.Count == 0 || result[^1] != index)
            {
                result.Add(index);
            }
        }

        return result.ToArray();
    }

    /// <summary>The first index whose time is at or after <paramref name="seconds"/> (within rounding); frameCount if none.</summary>
    private static long LowerBound(long frameCount, Func<long, double> timeOf, double seconds)
    {
        long lo = 0, hi = frameCount;
        while (lo < hi)
        {
            long mid = lo + ((hi - lo) / 2);
            if (timeOf(mid) < seconds - Epsilon)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private static string Format(double seconds) => TimeSpan.FromSeconds(seconds).ToString(@"hh\:mm\:ss\.fff", CultureInfo.InvariantCulture);
}
