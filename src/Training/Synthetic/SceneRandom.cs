namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// SplitMix64: a small, fast generator whose output is fixed by its seed on every platform and .NET version
/// (unlike <see cref="Random"/>, whose algorithm is an implementation detail).
/// </summary>
internal sealed class SceneRandom
{
    private ulong _state;

    public SceneRandom(int seed) => _state = 0x5DEECE66DUL ^ ((ulong)(uint)seed * 0xD1B54A32D192ED03UL);

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1), 53 bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [min, max).</summary>
    public double NextDouble(double min, double max) => min + ((max - min) * NextDouble());

    /// <summary>Uniform integer in [minInclusive, maxInclusive] (modulo bias below 2^-32 for the ranges used here).</summary>
    public int Next(int minInclusive, int maxInclusive)
    {
        ulong range = (ulong)((long)maxInclusive - minInclusive + 1);
        return (int)(minInclusive + (long)(NextUInt64() % range));
    }

    public bool Chance(double probability) => NextDouble() < probability;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(0, items.Count - 1)];

    /// <summary>Fisher-Yates, in place.</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = Next(0, i);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
