namespace VidKV.AI.Bench;

/// <summary>Summary statistics the benchmarks report.</summary>
internal static class Stats
{
    /// <summary>The middle value (for an even count, the upper of the two middle ones).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            throw new ArgumentException("No values to take the median of.", nameof(values));
        }

        return sorted[sorted.Length / 2];
    }
}
