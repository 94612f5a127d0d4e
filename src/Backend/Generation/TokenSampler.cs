using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Generation;

/// <summary>
/// Picks the next token from logits: greedy at temperature 0, otherwise temperature, top-k and top-p (nucleus) sampling
/// with a seeded generator. One sampler per request; not thread-safe.
/// </summary>
internal sealed class TokenSampler : IDisposable
{
    private static readonly Scalar NegativeInfinity = double.NegativeInfinity;
    private readonly GenerationOptions _options;
    private readonly Generator? _generator;
    private readonly Scalar _temperature;
    private readonly Scalar _topP;

    /// <summary>Creates a sampler for validated options.</summary>
    public TokenSampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _temperature = options.Temperature > 0 ? options.Temperature : 1.0;
        _topP = options.TopP;
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

        // Scalars kept in fields: a temporary Scalar can be freed by the GC while TorchSharp's native call uses it.
        l = l.div(_temperature);
        if (_options.TopK > 0 && _options.TopK < l.shape[0])
        {
            var kth = l.topk(_options.TopK).values[-1];
            l = l.masked_fill(l.lt(kth), NegativeInfinity);
        }

        if (_options.TopP < 1.0)
        {
            var (sorted, order) = l.sort(0, true, true);
            var probs = sorted.softmax(0);
            var cumulative = probs.cumsum(0);

            // Drop a token when the tokens before it already reach TopP (the first token is always kept).
            var drop = cumulative.sub(probs).ge(_topP);
            var dropped = zeros_like(drop).scatter(0, order, drop);
            l = l.masked_fill(dropped, NegativeInfinity);
        }

        return (int)multinomial(l.softmax(0), 1, false, _generator).item<long>();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _generator?.Dispose();
        _temperature.Dispose();
        _topP.Dispose();
    }
}
