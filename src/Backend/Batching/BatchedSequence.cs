using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Batching;

/// <summary>
/// One conversation inside a <see cref="BatchedGenerator"/>: its own cache, sampler (and seed), streaming text decoder,
/// stop sequences and counts. Owned by the generator, which frees its cache the moment it finishes or leaves.
/// </summary>
internal sealed class BatchedSequence : IDisposable
{
    private bool _disposed;

    internal BatchedSequence(long id, GenerationOptions options, ModelKVCache cache, TokenSampler sampler, StreamingDecoder decoder, CancellationToken cancellationToken)
    {
        Id = id;
        Options = options;
        Cache = cache;
        Sampler = sampler;
        Decoder = decoder;
        Stops = new StopSequenceMatcher(options.StopSequences);
        CancellationToken = cancellationToken;
    }

    /// <summary>The generator's number for this sequence (in order of admission).</summary>
    public long Id { get; }

    /// <summary>What the caller attached (the connector's request).</summary>
    public object? Tag { get; init; }

    /// <summary>The generation options.</summary>
    public GenerationOptions Options { get; }

    /// <summary>The sequence's cache; freed when it finishes or leaves.</summary>
    public ModelKVCache Cache { get; }

    /// <summary>Cancels this sequence; the generator removes it at the next step.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Whether it has finished, was cancelled, failed or was removed (its cache is freed).</summary>
    public bool IsFinished => _disposed;

    /// <summary>Tokens generated so far.</summary>
    public int Produced { get; internal set; }

    internal TokenSampler Sampler { get; }

    internal StreamingDecoder Decoder { get; }

    internal StopSequenceMatcher Stops { get; }

    internal PromptLayout? Layout { get; set; }

    /// <summary>The token to feed at the next step.</summary>
    internal int Next { get; set; }

    /// <summary>The position of <see cref="Next"/>.</summary>
    internal long Position { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Cache.Dispose();
        Sampler.Dispose();
    }
}
