using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Batching;

/// <summary>
/// Many conversations at once over one model: owns the active sequences, each with its own compressed cache, and advances
/// them together one token per <see cref="Step"/> (one batched pass through embeddings, projections, norms, MLP and
/// logits; attention per sequence over its own cache; sampling per sequence with its own sampler). A request joins with
/// <see cref="Add"/>; its prefill (through the video memory, so sequences of one remembered video share its stored blocks)
/// runs at the next steps, in parts of <see cref="GenerationSchedulerOptions.PrefillChunkTokens"/> between decode steps of
/// the running ones. A sequence leaves the moment it finishes, fails or is cancelled, its cache freed.
/// </summary>
/// <remarks>
/// <para>Not thread-safe: create and run it on the thread that owns the model, and dispose it there. Callbacks run on it.</para>
/// <para>The rules of a reply (end of turn, stop sequences, the token limit, streaming text, usage) live here only:
/// <see cref="VideoLanguageModelBase.Generate"/> is this loop with one sequence. With
/// <see cref="GenerationSchedulerOptions.RowWise"/> a sequence's updates are exactly those it gets alone.</para>
/// <para>Admission is by memory: <see cref="CacheBytesNeeded"/> measures what a request's cache will reach, and
/// <see cref="CanAdmit"/> holds while the sequences' bytes stay within <see cref="GenerationSchedulerOptions.MaxCacheBytes"/>
/// and their count within <see cref="GenerationSchedulerOptions.MaxConcurrentSequences"/>.</para>
/// </remarks>
public sealed class GenerationScheduler : IDisposable
{
    private readonly VideoLanguageModelBase _model;
    private readonly IBatchedDecoder? _decoder;
    private readonly List<ScheduledSequence> _joining = new();
    private readonly List<ScheduledSequence> _running = new();
    private readonly List<ScheduledSequence> _admitted = new();
    private readonly Dictionary<(KVCacheOptions Options, long Prompt, long New), long> _measured = new();
    private long _nextId;
    private long _reserved;
    private bool _disposed;

    /// <summary>Creates a scheduler over <paramref name="model"/> (not owned).</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public GenerationScheduler(VideoLanguageModelBase model, GenerationSchedulerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new GenerationSchedulerOptions();
        options.Validate();
        _model = model;
        _decoder = model.BatchedDecoder;
        Options = options;
    }

    /// <summary>The options.</summary>
    public GenerationSchedulerOptions Options { get; }

    /// <summary>Sequences admitted and not ended: joining (prefilling) and decoding.</summary>
    public int ActiveSequences => _joining.Count + _running.Count;

    /// <summary>Sequences still prefilling.</summary>
    public int JoiningSequences => _joining.Count;

    /// <summary>Whether no sequence is active.</summary>
    public bool IsIdle => ActiveSequences == 0;

    /// <summary>Cache bytes held for the active sequences (what their caches will reach; see <see cref="CacheBytesNeeded"/>).</summary>
    public long ReservedCacheBytes => _reserved;

    /// <summary>Bytes the active sequences' caches hold now.</summary>
    public CacheMemory CacheMemory => _running.Concat(_joining).Where(s => s.Cache is not null).Aggregate(default(CacheMemory), (sum, s) => sum + s.Cache!.Memory);

    /// <summary>Whether steps run one batched pass (else each sequence runs its own pass, for families without one).</summary>
    public bool IsBatched => _decoder is not null;

    /// <summary>
    /// The bytes a request's cache will reach: its prompt tokens (each video at its sampled frame count times the tokens
    /// per frame, known without decoding it) plus <see cref="GenerationOptions.MaxNewTokens"/> less one (the last token is
    /// never fed back), at the preset's bits,
    /// measured by filling a probe cache of one layer that long (remembered per preset and length). A family that cannot
    /// count its prompt tokens before decoding the media (Qwen2.5-VL) reserves its whole context, at most
    /// <see cref="GenerationSchedulerOptions.MaxCacheBytes"/>. 0 when that is <see cref="long.MaxValue"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The request or options are invalid.</exception>
    public long CacheBytesNeeded(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Check(request, options, cacheOptions);
        cacheOptions = _model.CacheOptionsFor(cacheOptions);
        if (Options.MaxCacheBytes == long.MaxValue)
        {
            return 0;
        }

        long context = _model.Info.ContextLength;
        int? bound = _model.PromptTokenBound(request, _model.Tokenize(request));
        long prompt = Math.Min(bound ?? context, context);
        long generated = Math.Clamp(options.MaxNewTokens - 1, 0, context - prompt); // the last token is never fed back
        var key = (cacheOptions, prompt, generated);
        if (!_measured.TryGetValue(key, out long bytes))
        {
            bytes = Measure(cacheOptions, prompt, generated);
            _measured[key] = bytes;
        }

        // A family that cannot count its prompt before decoding reserves its whole context, at most the whole budget
        // (then it runs alone rather than never).
        return bound is null ? Math.Min(bytes, Options.MaxCacheBytes) : bytes;
    }

    /// <summary>Whether a request needing <paramref name="cacheBytes"/> may join now.</summary>
    public bool CanAdmit(long cacheBytes)
        => ActiveSequences < Options.MaxConcurrentSequences && cacheBytes <= Options.MaxCacheBytes - _reserved;

    /// <summary>
    /// Admits a request: it joins at the next <see cref="Step"/>, which begins its prefill. Its updates go to
    /// <paramref name="onUpdate"/> (the last carries the finish reason and usage); then <paramref name="onEnded"/> runs once
    /// with <see langword="null"/>, or with the error that ended it (an <see cref="OperationCanceledException"/> when
    /// <paramref name="cancellationToken"/> was cancelled; it leaves at the next step).
    /// </summary>
    /// <exception cref="ArgumentException">The request or options are invalid, or its cache alone needs more than
    /// <see cref="GenerationSchedulerOptions.MaxCacheBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">It does not fit now (see <see cref="CanAdmit"/>).</exception>
    public void Add(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, Action<GenerationUpdate> onUpdate, Action<Exception?> onEnded, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onUpdate);
        ArgumentNullException.ThrowIfNull(onEnded);
        long bytes = CacheBytesNeeded(request, options, cacheOptions); // validates, then measures the resolved options
        cacheOptions = _model.CacheOptionsFor(cacheOptions);
        if (bytes > Options.MaxCacheBytes)
        {
            throw new ArgumentException(
                $"The request's cache needs {bytes:N0} bytes ({cacheOptions.Preset}, with {options.MaxNewTokens} new tokens); MaxCacheBytes is {Options.MaxCacheBytes:N0}. Use fewer frames, a smaller MaxNewTokens, a smaller preset, or raise MaxCacheBytes.",
                nameof(request));
        }

        if (!CanAdmit(bytes))
        {
            throw new InvalidOperationException(
                $"The scheduler is full: {ActiveSequences} of {Options.MaxConcurrentSequences} sequences, {_reserved:N0} of {Options.MaxCacheBytes:N0} cache bytes held, {bytes:N0} needed. Call CanAdmit first.");
        }

        var prefill = new PendingPrefill(_model, request, options, cacheOptions, Options.PrefillChunkTokens);
        var sequence = new ScheduledSequence(_nextId++, options, bytes, prefill, new TokenSampler(options), _model.Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true),
            onUpdate, onEnded, cancellationToken);
        _joining.Add(sequence);
        _admitted.Add(sequence);
        _reserved += bytes;
    }

    /// <summary>
    /// One round: cancelled sequences leave; the first joining sequence runs its next prefill part; the running ones
    /// advance one token in one pass (a cancellation during it wins over its token); a sequence whose prefill finished
    /// sends its first token and decodes from the next round. If a pass fails, every sequence in it ends with that error.
    /// </summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        EndCancelled();
        var joined = PrefillNext();
        if (_running.Count > 0)
        {
            Decode();
        }

        if (joined is not null)
        {
            if (joined.CancellationToken.IsCancellationRequested)
            {
                End(joined, new OperationCanceledException(joined.CancellationToken));
            }
            else
            {
                Emit(joined);
                if (!joined.IsFinished)
                {
                    _running.Add(joined);
                }
            }

            Release();
        }
    }

    /// <summary>Ends every active sequence with an <see cref="ObjectDisposedException"/> and frees their caches.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var s in _admitted.ToArray())
        {
            End(s, new ObjectDisposedException(nameof(GenerationScheduler), "The scheduler was disposed while this sequence ran."));
        }

        _joining.Clear();
        _running.Clear();
        _admitted.Clear();
        _reserved = 0;
    }

    private static void Check(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        options.Validate();
        cacheOptions.Validate();
        request.Sampling.Validate();
        request.Limits?.Validate();
    }

    /// <summary>One layer's cache filled with <paramref name="prompt"/> prompt and <paramref name="generated"/> new tokens, times the layers.</summary>
    private long Measure(KVCacheOptions cacheOptions, long prompt, long generated)
    {
        var g = _model.CacheGeometry;
        using var scope = NewDisposeScope();
        using var probe = new QuantizedKVCache(cacheOptions);
        if (prompt > 0)
        {
            var keys = randn(new long[] { 1, g.KeyValueHeads, prompt, g.HeadDim }, g.DType, g.Device);
            var importance = cacheOptions.Values == ValueQuantization.Protected ? rand(new long[] { prompt }, ScalarType.Float32, g.Device) : null;
            probe.Prefill(keys, keys, importance);
        }

        if (generated > 0)
        {
            var keys = randn(new long[] { 1, g.KeyValueHeads, generated, g.HeadDim }, g.DType, g.Device);
            probe.Append(keys, keys);
        }

        long bytes = probe.Memory.TotalBytes;
        if (cacheOptions.IsQuantized && generated > 0)
        {
            // A decoding cache keeps its residual in buffers of R tokens (QuantizedKVCache.AppendDecodeStep): count them full.
            long residualType = probe.ResidualKeys?.ElementSize ?? 2;
            long room = Math.Max(0, cacheOptions.ResidualLength - probe.ResidualLength);
            bytes += room * g.KeyValueHeads * 2L * g.HeadDim * residualType;
        }

        return bytes * g.Layers;
    }

    private void EndCancelled()
    {
        foreach (var s in _joining.Concat(_running).Where(s => s.CancellationToken.IsCancellationRequested).ToArray())
        {
            End(s, new OperationCanceledException(s.CancellationToken));
        }

        Release();
    }

    /// <summary>The first joining sequence's next prefill part; the sequence when its prefill is done.</summary>
    private ScheduledSequence? PrefillNext()
    {
        if (_joining.Count == 0)
        {
            return null;
        }

        var s = _joining[0];
        try
        {
            var done = s.Prefill!.Advance(s.Sampler.Next, s.CancellationToken);
            if (done is null)
            {
                return null;
            }

            _joining.RemoveAt(0);
            s.Prefilled(done);
            return s;
        }
        catch (Exception e)
        {
            End(s, e);
            Release();
            return null;
        }
    }

    private void Decode()
    {
        var running = _running.ToArray();
        int[] next;
        try
        {
            next = Advance(running);
        }
        catch (Exception e)
        {
            foreach (var s in running)
            {
                End(s, e);
            }

            Release();
            return;
        }

        for (int i = 0; i < running.Length; i++)
        {
            running[i].Next = next[i];
            running[i].Position++;
        }

        // As a one-at-a-time loop would: a cancellation during the step wins over the token it made.
        EndCancelled();
        foreach (var s in running.Where(s => !s.IsFinished))
        {
            Emit(s);
        }

        Release();
    }

    /// <summary>One decode step for <paramref name="sequences"/>: the next token of each.</summary>
    private int[] Advance(ScheduledSequence[] sequences)
    {
        using var scope = NewDisposeScope();
        int n = sequences.Length;
        var ids = tensor(sequences.Select(s => (long)s.Next).ToArray()).reshape(n, 1);
        var positions = sequences.Select(s => _model.DecodePositionIds(s.Position)).ToArray();
        Tensor hidden;
        if (_decoder is not null)
        {
            hidden = _decoder.ForwardDecodeBatch(_model.Embed(ids), positions, sequences.Select(s => s.Cache!).ToArray(), Options.RowWise);
        }
        else
        {
            hidden = cat(sequences.Select((s, i) => _model.Forward(new DecoderInput(_model.Embed(ids.narrow(0, i, 1))) { PositionIds = positions[i], Cache = s.Cache })).ToArray(), 0);
        }

        var last = hidden.select(1, -1); // [N, D]
        var logits = Options.RowWise || _decoder is null ? Models.Layers.Attention.PerRow(last, _model.Logits) : _model.Logits(last); // [N, V]
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = sequences[i].Sampler.Next(logits[i]);
        }

        return next;
    }

    /// <summary>
    /// The rule of a reply for the sequence's pending token: end of turn, text through the stop sequences, the token limit.
    /// A last update ends the sequence and frees its cache.
    /// </summary>
    private void Emit(ScheduledSequence s)
    {
        int next = s.Next;
        if (s.Options.StopAtEndOfTurn && _model.EndOfTurnTokens.Contains(next))
        {
            s.Send(Final(s, s.Stops.Push(s.Decoder.Flush()) + s.Stops.Flush(), null, FinishReason.EndOfTurn));
            return;
        }

        s.Produced++;
        string text = s.Stops.Push(s.Decoder.Push(next));
        if (s.Stops.Stopped)
        {
            s.Send(Final(s, text, next, FinishReason.StopSequence));
        }
        else if (s.Produced >= s.Options.MaxNewTokens)
        {
            s.Send(Final(s, text + s.Stops.Push(s.Decoder.Flush()) + s.Stops.Flush(), next, FinishReason.Length));
        }
        else
        {
            s.Send(new GenerationUpdate(text, next));
        }
    }

    private static GenerationUpdate Final(ScheduledSequence s, string text, int? token, FinishReason reason)
    {
        var layout = s.Layout!;
        return new GenerationUpdate(text, token, reason, new GenerationUsage(layout.Ids.Count, layout.VideoTokens, layout.ImageTokens, s.Produced, s.Cache!.Memory)
        {
            CachedPromptTokens = s.CachedPromptTokens,
        });
    }

    private static void End(ScheduledSequence s, Exception error) => s.Fail(error);

    /// <summary>Drops ended sequences and their reserved bytes.</summary>
    private void Release()
    {
        foreach (var s in _admitted.Where(s => s.IsFinished))
        {
            _reserved -= s.ReservedBytes;
        }

        _admitted.RemoveAll(s => s.IsFinished);
        _joining.RemoveAll(s => s.IsFinished);
        _running.RemoveAll(s => s.IsFinished);
    }
}
