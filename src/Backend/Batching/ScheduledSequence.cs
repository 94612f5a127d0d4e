using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Batching;

/// <summary>
/// One conversation inside a <see cref="GenerationScheduler"/>: its prefill while it joins, then its own cache, sampler
/// (and seed), streaming text decoder, stop sequences and counts, and where its updates go. Owned by the scheduler, which
/// frees its cache the moment it finishes or leaves.
/// </summary>
internal sealed class ScheduledSequence : IDisposable
{
    private readonly Action<GenerationUpdate> _onUpdate;
    private readonly Action<Exception?> _onEnded;
    private bool _disposed;

    internal ScheduledSequence(long id, GenerationOptions options, long reservedBytes, PendingPrefill prefill, TokenSampler sampler, StreamingDecoder decoder,
        Action<GenerationUpdate> onUpdate, Action<Exception?> onEnded, CancellationToken cancellationToken)
    {
        Id = id;
        Options = options;
        ReservedBytes = reservedBytes;
        Prefill = prefill;
        Sampler = sampler;
        Decoder = decoder;
        Stops = new StopSequenceMatcher(options.StopSequences);
        _onUpdate = onUpdate;
        _onEnded = onEnded;
        CancellationToken = cancellationToken;
    }

    /// <summary>The scheduler's number for this sequence (in order of admission).</summary>
    public long Id { get; }

    public GenerationOptions Options { get; }

    /// <summary>Cache bytes the scheduler holds for it from admission to its end.</summary>
    public long ReservedBytes { get; }

    /// <summary>Its prefill while it joins; <see langword="null"/> once prefilled.</summary>
    public PendingPrefill? Prefill { get; private set; }

    /// <summary>Its cache once prefilled; freed when it ends.</summary>
    public ModelKVCache? Cache { get; private set; }

    public CancellationToken CancellationToken { get; }

    /// <summary>Whether it has ended (finished, cancelled, failed); its cache is freed then.</summary>
    public bool IsFinished => _disposed;

    public int Produced { get; set; }

    public TokenSampler Sampler { get; }

    public StreamingDecoder Decoder { get; }

    public StopSequenceMatcher Stops { get; }

    public PromptLayout? Layout { get; private set; }

    public int CachedPromptTokens { get; private set; }

    /// <summary>The token to feed at the next step.</summary>
    public int Next { get; set; }

    /// <summary>The position of <see cref="Next"/>.</summary>
    public long Position { get; set; }

    /// <summary>Takes over a finished prefill: its cache, layout and first token.</summary>
    public void Prefilled(PrefilledPrompt prompt)
    {
        Prefill?.Dispose();
        Prefill = null;
        Cache = prompt.Cache;
        Layout = prompt.Layout;
        Next = prompt.Next;
        Position = prompt.Position;
        CachedPromptTokens = prompt.CachedTokens;
    }

    /// <summary>Passes an update on; a last one ends the sequence.</summary>
    public void Send(GenerationUpdate update)
    {
        if (update.FinishReason is not null)
        {
            Dispose();
        }

        _onUpdate(update);
        if (update.FinishReason is not null)
        {
            _onEnded(null);
        }
    }

    /// <summary>Ends the sequence with an error (an <see cref="OperationCanceledException"/> when it was cancelled).</summary>
    public void Fail(Exception error)
    {
        if (!_disposed)
        {
            Dispose();
            _onEnded(error);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Prefill?.Dispose();
        Cache?.Dispose();
        Sampler.Dispose();
    }
}
