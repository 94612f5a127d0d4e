using System.Globalization;

namespace VidKV.AI.Backend.Generation;

/// <summary>How tokens are chosen and when generation stops. Validated by <see cref="Validate"/>.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate (1 to 1,000,000). Default 256.</summary>
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>Sampling temperature; 0 (default) picks the most likely token (greedy). Allowed: 0 to 100.</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this, in (0, 1]. Default 1 (off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Keep only the K most likely tokens; 0 (default) keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the sampler; the same seed, prompt and options give the same tokens.</summary>
    public long? Seed { get; init; }

    /// <summary>Texts that end generation when they appear in the output (matched across token boundaries; not emitted).</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = Array.Empty<string>();

    /// <summary>Stop at the model's end-of-turn and end-of-text tokens (default true).</summary>
    public bool StopAtEndOfTurn { get; init; } = true;

    /// <summary>
    /// Whether the request may reuse, and store, prefixes in the model's video memory (default true; see
    /// <see cref="Memory.VideoMemory"/>). False prefills the whole prompt in one pass and stores nothing (what the model
    /// does without a memory).
    /// </summary>
    public bool UseVideoMemory { get; init; } = true;

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        string N(double v) => v.ToString(CultureInfo.InvariantCulture);
        if (MaxNewTokens is < 1 or > 1_000_000)
        {
            throw new ArgumentException($"MaxNewTokens is {MaxNewTokens}; allowed: 1 to 1,000,000.");
        }

        if (!(Temperature >= 0 && Temperature <= 100))
        {
            throw new ArgumentException($"Temperature is {N(Temperature)}; allowed: 0 (greedy) to 100.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentException($"TopP is {N(TopP)}; allowed: greater than 0, at most 1.");
        }

        if (TopK < 0)
        {
            throw new ArgumentException($"TopK is {TopK}; allowed: 0 (off) or a positive count.");
        }

        if (StopSequences is null || StopSequences.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("StopSequences must not contain null or empty strings.");
        }
    }
}
