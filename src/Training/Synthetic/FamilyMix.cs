using System.Globalization;

namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// The relative weights of the question families in generated data: which family a seed draws
/// (<see cref="SceneGenerator"/>) and how many samples of each a dataset split holds (<see cref="SyntheticDataset"/>).
/// </summary>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed class FamilyMix
{
    private readonly double[] _fractions;

    /// <summary>Creates a mix from weights; families left out get weight 0.</summary>
    /// <param name="weights">Non-negative, finite weights; at least one positive. They need not sum to 1.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weights"/> is null.</exception>
    /// <exception cref="ArgumentException">A weight is negative or not finite, a family is undefined, or no weight is positive.</exception>
    public FamilyMix(IReadOnlyDictionary<QuestionFamily, double> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var all = Enum.GetValues<QuestionFamily>();
        double[] raw = new double[all.Length];
        foreach (var (family, weight) in weights)
        {
            if (!Enum.IsDefined(family))
            {
                throw new ArgumentException($"Unknown question family {(int)family}; allowed: {string.Join(", ", all)}.", nameof(weights));
            }

            if (!double.IsFinite(weight) || weight < 0)
            {
                throw new ArgumentException(
                    string.Create(CultureInfo.InvariantCulture, $"The weight of {family} is {weight}; weights must be finite and >= 0."), nameof(weights));
            }

            raw[(int)family] = weight;
        }

        double sum = raw.Sum();
        if (sum <= 0)
        {
            throw new ArgumentException($"At least one family needs a positive weight; allowed families: {string.Join(", ", all)}.", nameof(weights));
        }

        _fractions = [.. raw.Select(w => w / sum)];
    }

    /// <summary>Every family with the same weight (the default).</summary>
    public static FamilyMix Balanced { get; } = new(Enum.GetValues<QuestionFamily>().ToDictionary(f => f, _ => 1.0));

    /// <summary>The families with a positive weight, in enum order.</summary>
    public IReadOnlyList<QuestionFamily> Families => [.. Enum.GetValues<QuestionFamily>().Where(f => _fractions[(int)f] > 0)];

    /// <summary>
    /// Parses a mix written as comma-separated families with optional weights, e.g. <c>Attribute,MotionDirection:2</c>
    /// (a family without a weight has weight 1; families left out have weight 0). Names ignore case.
    /// </summary>
    /// <param name="text">The mix.</param>
    /// <returns>The mix.</returns>
    /// <exception cref="ArgumentException">A name is not a family, a weight is not a finite number of at least 0, a family is
    /// named twice, or no weight is positive; the message names the part and what is allowed.</exception>
    public static FamilyMix Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var weights = new Dictionary<QuestionFamily, double>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var pieces = part.Split(':', StringSplitOptions.TrimEntries);
            if (pieces.Length > 2 || !Enum.TryParse<QuestionFamily>(pieces[0], ignoreCase: true, out var family) || !Enum.IsDefined(family)
                || int.TryParse(pieces[0], out _))
            {
                throw new ArgumentException($"'{part}' is not FAMILY or FAMILY:WEIGHT; families: {string.Join(", ", Enum.GetValues<QuestionFamily>())}.", nameof(text));
            }

            double weight = 1;
            if (pieces.Length == 2 && (!double.TryParse(pieces[1], NumberStyles.Float, CultureInfo.InvariantCulture, out weight) || !double.IsFinite(weight) || weight < 0))
            {
                throw new ArgumentException($"The weight in '{part}' must be a finite number of at least 0.", nameof(text));
            }

            if (!weights.TryAdd(family, weight))
            {
                throw new ArgumentException($"{family} is named twice in '{text}'.", nameof(text));
            }
        }

        return new FamilyMix(weights);
    }

    /// <summary>A mix of one family only.</summary>
    /// <param name="family">The family.</param>
    /// <returns>A mix in which <paramref name="family"/> has all the weight.</returns>
    /// <exception cref="ArgumentException"><paramref name="family"/> is not defined.</exception>
    public static FamilyMix Only(QuestionFamily family) => new(new Dictionary<QuestionFamily, double> { [family] = 1 });

    /// <summary>A family's share of the mix.</summary>
    /// <param name="family">A family.</param>
    /// <returns>Its weight divided by the sum of the weights, 0 to 1.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="family"/> is not defined.</exception>
    public double Fraction(QuestionFamily family)
    {
        if (!Enum.IsDefined(family))
        {
            throw new ArgumentOutOfRangeException(nameof(family), family, $"Unknown question family; allowed: {string.Join(", ", Enum.GetValues<QuestionFamily>())}.");
        }

        return _fractions[(int)family];
    }

    /// <summary>
    /// How many of <paramref name="count"/> samples each family gets: the largest-remainder apportionment of the
    /// fractions (ties to the earlier family), so the counts sum to <paramref name="count"/> and each is within one of
    /// its exact share.
    /// </summary>
    /// <param name="count">The number of samples, at least 0.</param>
    /// <returns>A count for every family, including those with weight 0.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    public IReadOnlyDictionary<QuestionFamily, int> Apportion(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var all = Enum.GetValues<QuestionFamily>();
        int[] counts = [.. _fractions.Select(f => (int)Math.Floor(f * count))];
        int left = count - counts.Sum();
        var byRemainder = all.Where(f => _fractions[(int)f] > 0)
            .OrderByDescending(f => (_fractions[(int)f] * count) - counts[(int)f])
            .ThenBy(f => (int)f)
            .ToArray();
        for (int i = 0; i < left; i++)
        {
            counts[(int)byRemainder[i % byRemainder.Length]]++;
        }

        return all.ToDictionary(f => f, f => counts[(int)f]);
    }

    /// <summary>
    /// A sequence of <paramref name="count"/> families with the counts of <see cref="Apportion"/>, interleaved evenly
    /// (each family's k-th sample sits near position <c>(k + 0.5) / n_family</c> of the sequence).
    /// </summary>
    /// <param name="count">The length of the sequence, at least 0.</param>
    /// <returns>The families in order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    public IReadOnlyList<QuestionFamily> Sequence(int count)
    {
        var counts = Apportion(count);
        return [.. counts.SelectMany(kv => Enumerable.Range(0, kv.Value).Select(k => (Family: kv.Key, Key: (k + 0.5) / kv.Value)))
            .OrderBy(x => x.Key)
            .ThenBy(x => (int)x.Family)
            .Select(x => x.Family)];
    }

    /// <summary>The family a uniform draw in [0, 1) falls on, by cumulative fraction.</summary>
    internal QuestionFamily Pick(double u)
    {
        double cumulative = 0;
        QuestionFamily last = QuestionFamily.Attribute;
        foreach (var family in Enum.GetValues<QuestionFamily>())
        {
            if (_fractions[(int)family] <= 0)
            {
                continue;
            }

            last = family;
            cumulative += _fractions[(int)family];
            if (u < cumulative)
            {
                return family;
            }
        }

        return last;
    }

    /// <summary>The fractions, e.g. <c>"Attribute 0.2, Counting 0.2, ..."</c>.</summary>
    /// <returns>Every family with a positive weight and its fraction.</returns>
    public override string ToString() =>
        string.Join(", ", Families.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f} {_fractions[(int)f]:G4}")));
}
