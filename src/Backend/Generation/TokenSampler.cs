using static TorchSharp.torch;

namespace VidKV.AI.Backend.Generation;

/// <summary>
/// Picks the next token from logits: greedy at temperature 0, otherwise temperature, top-k and top-p (nucleus) sampling
/// with a seeded generator. One sampler per request; not thread-safe.
/// </summary>
public sealed class TokenSampler : IDisposable
{
    private readonly GenerationOptions _options;
    private readonly Generator? _generator;

    /// <summary>Creates a sampler for validated options.</summary>
    public TokenSampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        if (options.Temperature > 0)
        {
            _generator = new Generator(options.Seed is { } seed ? (ulong)seed : (ulong)Random.Shared.NextInt64());
        }
    }

    /// <summary>The next token for float32 logits [V].</summary>
    public int Next(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        using var scope = NewDisposeScope();
        var l = logits.to(ScalarType.Float32).reshape(-1);
        if (_generator is null)
        {
            return (int)l.argmax().item<long>();
        }

        l = l / _options.Temperature;
        if (_options.TopK > 0 && _options.TopK < l.shape[0])
        {
            var kth = l.topk(_options.TopK).values[-1];
            l = l.masked_fill(l.lt(kth), double.NegativeInfinity);
        }

        if (_options.TopP < 1.0)
        {
            var (sorted, order) = l.sort(0, true, true);
            var probs = sorted.softmax(0);
            var cumulative = probs.cumsum(0);

            // Drop a token when the tokens before it already reach TopP (the first token is always kept).
            var drop = (cumulative - probs).ge(_options.TopP);
            var dropped = zeros_like(drop).scatter(0, order, drop);
            l = l.masked_fill(dropped, double.NegativeInfinity);
        }

        return (int)multinomial(l.softmax(0), 1, false, _generator).item<long>();
    }

    /// <inheritdoc />
    public void Dispose() => _generator?.Dispose();
}
