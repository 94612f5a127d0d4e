namespace VidKV.AI.Training.Synthetic;

/// <summary>A synthetic dataset's training, validation and test samples, generated from disjoint seeds.</summary>
/// <remarks>Immutable and thread-safe.</remarks>
/// <param name="Train">The training samples.</param>
/// <param name="Validation">The validation samples.</param>
/// <param name="Test">The held-out test samples.</param>
public sealed record SyntheticSplit(IReadOnlyList<VideoQaSample> Train, IReadOnlyList<VideoQaSample> Validation, IReadOnlyList<VideoQaSample> Test)
{
    /// <summary>The samples of one part.</summary>
    /// <param name="split">The part.</param>
    /// <returns><see cref="Train"/>, <see cref="Validation"/> or <see cref="Test"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="split"/> is not defined.</exception>
    public IReadOnlyList<VideoQaSample> this[DatasetSplit split] => split switch
    {
        DatasetSplit.Train => Train,
        DatasetSplit.Validation => Validation,
        DatasetSplit.Test => Test,
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, "Allowed: Train, Validation, Test."),
    };
}
