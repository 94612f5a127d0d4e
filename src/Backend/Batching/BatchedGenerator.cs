using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Batching;

/// <summary>
/// Many conversations at once over one model: a set of active sequences, each with its own compressed cache, advanced
/// one token together per <see cref="Step"/> (one batched pass through embeddings, projections, norms, MLP and logits;
/// attention per sequence over its own cache; sampling per sequence with its own sampler). A sequence joins with
/// <see cref="Admit"/> (its whole prefill runs then) and leaves the moment it finishes, is cancelled or is removed, its cache
/// freed. Each sequence's updates are exactly those <see cref="VideoLanguageModelBase.Generate"/> yields for it alone.
/// </summary>
/// <remarks>
/// Not thread-safe: run it on the thread that owns the model. With <see cref="RowWise"/> (the default) a sequence's tokens
/// are bitwise those it gets alone: BLAS gives other last bits for a matrix of N rows than for one row (MKL's one-row
/// path differs from its N-row one, and N-row results change with N), so the matrix products run once per row while
/// everything else (embeddings, norms, rotary, activations, bookkeeping) runs once over the batch. Without it the products
/// run once over the batch: faster, logits equal to about 1e-6, tokens equal unless two logits are that close.
/// </remarks>
internal sealed class BatchedGenerator : IDisposable
{
    private readonly VideoLanguageModelBase _model;
    private readonly IBatchedDecoder? _decoder;
    private readonly List<BatchedSequence> _active = new();
    private long _nextId;
    private bool _disposed;

    /// <summary>Creates a generator over <paramref name="model"/> (not owned).</summary>
    /// <param name="model">The model.</param>
    /// <param name="rowWise">Matrix products once per row, so that results do not depend on the batch (see remarks).</param>
    public BatchedGenerator(VideoLanguageModelBase model, bool rowWise = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _decoder = BatchedDecoderOf(model);
        RowWise = rowWise;
    }

    /// <summary>Whether matrix products run once per row (results independent of the batch).</summary>
    public bool RowWise { get; }

    /// <summary>The active sequences, in order of admission.</summary>
    public IReadOnlyList<BatchedSequence> Active => _active;

    /// <summary>Whether steps run one batched pass (else each sequence runs its own pass, for families without one).</summary>
    public bool IsBatched => _decoder is not null;

    /// <summary>Bytes all active caches hold.</summary>
    public CacheMemory Memory => _active.Aggregate(default(CacheMemory), (sum, s) => sum + s.Cache.Memory);

    /// <summary>
    /// Admits a conversation: decodes its media, prefills its cache and samples its first token, all now. Returns its first
    /// update; when that is the last one (one token asked for, or an immediate end of turn) the sequence is already gone.
    /// </summary>
    /// <exception cref="ArgumentException">The request or options are invalid, or the prompt does not fit the context.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (nothing is kept).</exception>
    public SequenceUpdate Admit(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default, object? tag = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        options.Validate();
        cacheOptions.Validate();
        request.Sampling.Validate();
        cancellationToken.ThrowIfCancellationRequested();

        var cache = _model.CreateCache(cacheOptions);
        BatchedSequence? sequence = null;
        try
        {
            _model.CacheCreated?.Invoke(cache);
            sequence = new BatchedSequence(_nextId++, options, cache, new TokenSampler(options), _model.Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true), cancellationToken) { Tag = tag };
            Prefill(request, cacheOptions, sequence, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            var update = new SequenceUpdate(sequence, Emit(sequence));
            if (!sequence.IsFinished)
            {
                _active.Add(sequence);
            }

            return update;
        }
        catch
        {
            if (sequence is null)
            {
                cache.Dispose();
            }
            else
            {
                sequence.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Advances every active sequence by one token. A cancelled sequence leaves first (its result carries an
    /// <see cref="OperationCanceledException"/>); the rest run one batched pass; a sequence whose update is its last leaves
    /// with it. If the pass itself fails, every sequence in it ends with that error.
    /// </summary>
    public IReadOnlyList<SequenceUpdate> Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var results = new List<SequenceUpdate>(_active.Count);
        RemoveCancelled(results);
        if (_active.Count == 0)
        {
            return results;
        }

        var running = _active.ToArray();
        int[] next;
        try
        {
            next = Advance(running);
        }
        catch (Exception e)
        {
            foreach (var s in running)
            {
                results.Add(new SequenceUpdate(s, null, e));
                s.Dispose();
            }

            _active.Clear();
            return results;
        }

        for (int i = 0; i < running.Length; i++)
        {
            var s = running[i];
            s.Next = next[i];
            s.Position++;
        }

        // As the one-at-a-time loop does: a cancellation during the step wins over the token it made.
        RemoveCancelled(results);
        foreach (var s in running.Where(s => !s.IsFinished))
        {
            results.Add(new SequenceUpdate(s, Emit(s)));
        }

        _active.RemoveAll(s => s.IsFinished);
        return results;
    }

    /// <summary>Removes a sequence now (its caller went away) and frees its cache; false if it was not active.</summary>
    public bool Remove(BatchedSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        bool removed = _active.Remove(sequence);
        sequence.Dispose();
        return removed;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var s in _active)
        {
            s.Dispose();
        }

        _active.Clear();
    }

    /// <summary>The family's batched decoder, if it has one.</summary>
    // After the prefix-reuse work on VideoLanguageModelBase lands, this becomes a virtual member of the base class.
    internal static IBatchedDecoder? BatchedDecoderOf(VideoLanguageModelBase model) => model switch
    {
        LlavaOnevisionVideoModel llava => llava.Model,
        _ => null,
    };

    private void RemoveCancelled(List<SequenceUpdate> results)
    {
        foreach (var s in _active.Where(s => s.CancellationToken.IsCancellationRequested))
        {
            results.Add(new SequenceUpdate(s, null, new OperationCanceledException(s.CancellationToken)));
            s.Dispose();
        }

        _active.RemoveAll(s => s.IsFinished);
    }

    /// <summary>The prefill of VideoLanguageModelBase: decode, check the context, encode, run, sample the first token.</summary>
    private void Prefill(ChatRequest request, KVCacheOptions cacheOptions, BatchedSequence sequence, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var media = _model.Decode(request, cancellationToken);
        var layout = _model.Layout(request, media);
        int context = _model.Info.ContextLength;
        if (layout.Ids.Count + sequence.Options.MaxNewTokens > context)
        {
            throw new ArgumentException(
                $"The prompt is {layout.Ids.Count} tokens ({layout.VideoTokens} of video, {layout.ImageTokens} of images) and {sequence.Options.MaxNewTokens} new tokens were asked for; the model's context is {context} tokens. Use fewer frames or a smaller MaxNewTokens.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var prompt = _model.Encode(layout, media, cacheOptions);
        var hidden = _model.Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds, Cache = sequence.Cache, Importance = prompt.Importance });
        sequence.Next = sequence.Sampler.Next(_model.Logits(hidden.select(1, -1))[0]);
        sequence.Position = prompt.NextPosition;
        sequence.Layout = layout;
    }

    /// <summary>One decode step for <paramref name="sequences"/>: the next token of each.</summary>
    private int[] Advance(BatchedSequence[] sequences)
    {
        using var scope = NewDisposeScope();
        int n = sequences.Length;
        var ids = tensor(sequences.Select(s => (long)s.Next).ToArray()).reshape(n, 1);
        var positions = sequences.Select(s => _model.DecodePositionIds(s.Position)).ToArray();
        Tensor hidden;
        if (_decoder is not null)
        {
            hidden = _decoder.ForwardDecodeBatch(_model.Embed(ids), positions, sequences.Select(s => s.Cache).ToArray(), RowWise);
        }
        else
        {
            hidden = cat(sequences.Select((s, i) => _model.Forward(new DecoderInput(_model.Embed(ids.narrow(0, i, 1))) { PositionIds = positions[i], Cache = s.Cache })).ToArray(), 0);
        }

        var last = hidden.select(1, -1); // [N, D]
        var logits = RowWise || _decoder is null ? Models.Layers.Attention.PerRow(last, _model.Logits) : _model.Logits(last); // [N, V]
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = sequences[i].Sampler.Next(logits[i]);
        }

        return next;
    }

    /// <summary>
    /// The streaming rule of VideoLanguageModelBase for the sequence's pending token: end of turn, text through the stop
    /// sequences, the token limit. A last update frees the sequence.
    /// </summary>
    private GenerationUpdate Emit(BatchedSequence s)
    {
        int next = s.Next;
        if (s.Options.StopAtEndOfTurn && _model.EndOfTurnTokens.Contains(next))
        {
            return Final(s, s.Stops.Push(s.Decoder.Flush()) + s.Stops.Flush(), null, FinishReason.EndOfTurn);
        }

        s.Produced++;
        string text = s.Stops.Push(s.Decoder.Push(next));
        if (s.Stops.Stopped)
        {
            return Final(s, text, next, FinishReason.StopSequence);
        }

        if (s.Produced >= s.Options.MaxNewTokens)
        {
            return Final(s, text + s.Stops.Push(s.Decoder.Flush()) + s.Stops.Flush(), next, FinishReason.Length);
        }

        return new GenerationUpdate(text, next);
    }

    private static GenerationUpdate Final(BatchedSequence s, string text, int? token, FinishReason reason)
    {
        var layout = s.Layout!;
        var update = new GenerationUpdate(text, token, reason, new GenerationUsage(layout.Ids.Count, layout.VideoTokens, layout.ImageTokens, s.Produced, s.Cache.Memory));
        s.Dispose();
        return update;
    }
}
