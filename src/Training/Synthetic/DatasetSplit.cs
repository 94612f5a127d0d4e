namespace VidKV.AI.Training.Synthetic;

/// <summary>The three parts of a synthetic dataset; each draws its seeds from its own lane (see <see cref="SyntheticDataset.SeedOf"/>).</summary>
public enum DatasetSplit
{
    /// <summary>Training samples: seeds <c>seedBase + 3i</c>.</summary>
    Train,

    /// <summary>Validation samples: seeds <c>seedBase + 3i + 1</c>.</summary>
    Validation,

    /// <summary>Held-out test samples: seeds <c>seedBase + 3i + 2</c>.</summary>
    Test,
}
