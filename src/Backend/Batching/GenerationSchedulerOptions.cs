namespace VidKV.AI.Backend.Batching;

/// <summary>
/// Limits and settings of a <see cref="GenerationScheduler"/>: how many sequences run together, how many cache bytes they
/// may hold, and how a joining prompt's prefill is split.
/// </summary>
public sealed record GenerationSchedulerOptions
{
    /// <summary>The settings of the one-at-a-time path (<see cref="VideoLanguageModelBase.Generate"/>): one sequence, no byte budget, whole prefill.</summary>
    public static GenerationSchedulerOptions OneAtATime { get; } = new() { MaxConcurrentSequences = 1, MaxCacheBytes = long.MaxValue };

    /// <summary>Sequences prefilling or decoding at once (default 8).</summary>
    public int MaxConcurrentSequences { get; init; } = 8;

    /// <summary>
    /// Cache bytes all admitted sequences may need together (default 4 GiB): each sequence holds, from admission to its end,
    /// the bytes its cache will reach (prompt tokens with every frame's tokens, plus its maximum new tokens, at its preset),
    /// measured on a probe cache. <see cref="long.MaxValue"/> admits by count only (and measures nothing).
    /// </summary>
    public long MaxCacheBytes { get; init; } = 4L << 30;

    /// <summary>
    /// Largest part of a joining prompt prefilled between two decode steps of the running sequences; 0 (the default)
    /// prefills a prompt in one pass. Parts apply to plain prefills of families that can continue a cache with presets that
    /// protect no tokens; a later part attends over the cache the earlier ones left, so answers to prompts longer than one
    /// part can differ from those of a one-pass prefill (they never depend on what else runs).
    /// </summary>
    public int PrefillChunkTokens { get; init; }

    /// <summary>
    /// Matrix products once per row (the default), so that a sequence's tokens are bitwise those it gets alone; without it
    /// they run once over the batch (faster, logits equal to about 1e-6).
    /// </summary>
    public bool RowWise { get; init; } = true;

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range; the message names it and what is allowed.</exception>
    public void Validate()
    {
        if (MaxConcurrentSequences is < 1 or > 4096)
        {
            throw new ArgumentException($"GenerationSchedulerOptions.MaxConcurrentSequences is {MaxConcurrentSequences}; allowed: 1 to 4,096.");
        }

        if (MaxCacheBytes < 1)
        {
            throw new ArgumentException($"GenerationSchedulerOptions.MaxCacheBytes is {MaxCacheBytes}; allowed: a positive number of bytes.");
        }

        if (PrefillChunkTokens < 0)
        {
            throw new ArgumentException($"GenerationSchedulerOptions.PrefillChunkTokens is {PrefillChunkTokens}; allowed: 0 (one pass) or a positive number of tokens.");
        }
    }
}
