namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Builds train, validation and test sets of synthetic video QA samples from disjoint seeds, with the question
/// families in a given proportion.
/// </summary>
/// <remarks>
/// <para>
/// Sample <c>i</c> of a part uses seed <see cref="SeedOf"/>(seedBase, part, i) = <c>seedBase + 3i</c> (train),
/// <c>+ 1</c> (validation) or <c>+ 2</c> (test): the parts never share a seed, whatever their sizes, and a part's
/// first samples stay the same when it grows. Families follow <see cref="FamilyMix.Sequence"/>: each part holds
/// exactly the apportioned number of each family, interleaved.
/// </para>
/// <para>Stateless and thread-safe. Samples hold scenes, not pixels: render them when needed (<see cref="SceneRenderer"/>).</para>
/// </remarks>
public static class SyntheticDataset
{
    /// <summary>
    /// Splits <paramref name="count"/> samples into train (the rest), validation (a tenth, rounded down) and test (a
    /// tenth, rounded down).
    /// </summary>
    /// <param name="seedBase">The first seed.</param>
    /// <param name="count">The total number of samples, at least 0.</param>
    /// <param name="familyMix">The families' proportions; <see langword="null"/> for <see cref="FamilyMix.Balanced"/>.</param>
    /// <param name="minFrames">The shortest video (8 or more).</param>
    /// <param name="maxFrames">The longest video (<paramref name="minFrames"/> to 1024).</param>
    /// <param name="options">Other settings (frame size, objects, needle timing); their family, mix and frame range are replaced by the arguments.</param>
    /// <returns>The three parts.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative or the seeds would overflow <see cref="int"/>.</exception>
    /// <exception cref="ArgumentException">The settings are invalid; the message names the setting.</exception>
    public static SyntheticSplit Split(int seedBase, int count, FamilyMix? familyMix = null, int minFrames = 8, int maxFrames = 256, SceneOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        int validation = count / 10, test = count / 10;
        return Split(seedBase, count - validation - test, validation, test, familyMix, minFrames, maxFrames, options);
    }

    /// <summary>Generates the three parts with explicit sizes.</summary>
    /// <param name="seedBase">The first seed.</param>
    /// <param name="trainCount">The number of training samples, at least 0.</param>
    /// <param name="validationCount">The number of validation samples, at least 0.</param>
    /// <param name="testCount">The number of test samples, at least 0.</param>
    /// <param name="familyMix">The families' proportions; <see langword="null"/> for <see cref="FamilyMix.Balanced"/>.</param>
    /// <param name="minFrames">The shortest video (8 or more).</param>
    /// <param name="maxFrames">The longest video (<paramref name="minFrames"/> to 1024).</param>
    /// <param name="options">Other settings; their family, mix and frame range are replaced by the arguments.</param>
    /// <returns>The three parts.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A count is negative or the seeds would overflow <see cref="int"/>.</exception>
    /// <exception cref="ArgumentException">The settings are invalid; the message names the setting.</exception>
    public static SyntheticSplit Split(
        int seedBase, int trainCount, int validationCount, int testCount, FamilyMix? familyMix, int minFrames, int maxFrames, SceneOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trainCount);
        ArgumentOutOfRangeException.ThrowIfNegative(validationCount);
        ArgumentOutOfRangeException.ThrowIfNegative(testCount);
        var settings = (options ?? new SceneOptions()) with
        {
            Family = null,
            FamilyMix = familyMix ?? FamilyMix.Balanced,
            MinFrames = minFrames,
            MaxFrames = maxFrames,
        };
        return new SyntheticSplit(
            Generate(seedBase, DatasetSplit.Train, trainCount, settings),
            Generate(seedBase, DatasetSplit.Validation, validationCount, settings),
            Generate(seedBase, DatasetSplit.Test, testCount, settings));
    }

    /// <summary>Generates one part: <paramref name="count"/> samples from the part's seed lane, families in <see cref="SceneOptions.FamilyMix"/>'s proportions.</summary>
    /// <param name="seedBase">The first seed of the dataset.</param>
    /// <param name="split">The part.</param>
    /// <param name="count">The number of samples, at least 0.</param>
    /// <param name="options">The settings; <see cref="SceneOptions.Family"/> is ignored (the mix decides).</param>
    /// <returns>The samples, in order.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative, <paramref name="split"/> undefined, or the seeds would overflow <see cref="int"/>.</exception>
    /// <exception cref="ArgumentException">The settings are invalid; the message names the setting.</exception>
    public static IReadOnlyList<VideoQaSample> Generate(int seedBase, DatasetSplit split, int count, SceneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > 0)
        {
            _ = SeedOf(seedBase, split, count - 1);
        }

        var settings = options with { Family = null };
        settings.Validate();
        var families = settings.FamilyMix.Sequence(count);
        var samples = new VideoQaSample[count];
        Parallel.For(0, count, i => samples[i] = SceneGenerator.Generate(SeedOf(seedBase, split, i), settings with { Family = families[i] }));
        return Array.AsReadOnly(samples);
    }

    /// <summary>The seed of sample <paramref name="index"/> of a part: <c>seedBase + 3 * index + (int)split</c>.</summary>
    /// <param name="seedBase">The first seed of the dataset.</param>
    /// <param name="split">The part.</param>
    /// <param name="index">The sample's index in the part, at least 0.</param>
    /// <returns>The seed.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range, or the seed would overflow <see cref="int"/>.</exception>
    public static int SeedOf(int seedBase, DatasetSplit split, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (!Enum.IsDefined(split))
        {
            throw new ArgumentOutOfRangeException(nameof(split), split, "Allowed: Train, Validation, Test.");
        }

        long seed = seedBase + (3L * index) + (int)split;
        if (seed > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(
                nameof(index), index, $"Seed base {seedBase} with {index + 1} samples per part overflows int (largest seed {seed}); use a smaller seed base.");
        }

        return (int)seed;
    }
}
