using VidKV.AI.Backend.Batching;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend;

/// <summary>
/// What every decoder-based family shares: the generation loop (prefill, reusing the video memory's stored prefixes, then
/// one token a step with sampling, stop sequences, streaming text and the end-of-turn rule) and the video memory
/// (<see cref="IVideoMemoryModel"/>). A family supplies its prompt tokens, media decoding, prompt layout, encoding (visual
/// features, position ids, importance scores) and decoder. Families outside this library implement
/// <see cref="IVideoLanguageModel"/> directly.
/// </summary>
public abstract class VideoLanguageModelBase : IVideoMemoryModel
{
    private readonly HashSet<int> _endOfTurn;
    private readonly string _fingerprint;

    private int _mediaDecodes, _visualEncodes;

    private protected VideoLanguageModelBase(string directory, Qwen2Tokenizer tokenizer, IEnumerable<int> endOfSequenceIds)
    {
        Directory = directory;
        Tokenizer = tokenizer;
        _endOfTurn = new HashSet<int>(endOfSequenceIds);
        foreach (var token in new[] { "<|im_end|>", "<|endoftext|>" })
        {
            if (tokenizer.TokenToId(token) is { } id)
            {
                _endOfTurn.Add(id);
            }
        }

        if (tokenizer.EosTokenId is { } eos)
        {
            _endOfTurn.Add(eos);
        }

        _fingerprint = ModelFingerprint.Compute(directory);
        VideoMemory = new VideoMemory(_fingerprint, new VideoMemoryOptions());
    }

    /// <inheritdoc />
    public string Directory { get; }

    /// <inheritdoc />
    public abstract ModelInfo Info { get; }

    /// <summary>The tokenizer.</summary>
    public Qwen2Tokenizer Tokenizer { get; }

    /// <summary>Token ids that end a turn.</summary>
    public IReadOnlySet<int> EndOfTurnTokens => _endOfTurn;

    /// <inheritdoc />
    public VideoMemory VideoMemory { get; private set; }

    /// <summary>
    /// Requests (and <see cref="RememberVideo(ChatRequest, KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/>
    /// calls) whose images or videos this model decoded since it was loaded. A video answered from the video memory is not decoded.
    /// </summary>
    /// <remarks>Thread-safe; counts only, for monitoring and for checking that a remembered video is reused.</remarks>
    public int MediaDecodes => Volatile.Read(ref _mediaDecodes);

    /// <summary>
    /// Requests (and remember calls) for which this model ran its vision tower since it was loaded. A video answered from the
    /// video memory (in memory, on disk or in a shared cache) does not run it.
    /// </summary>
    /// <remarks>Thread-safe; counts only.</remarks>
    public int VisualEncodes => Volatile.Read(ref _visualEncodes);

    /// <summary>Test hook: called with each request's cache when it is created.</summary>
    internal Action<ModelKVCache>? CacheCreated { get; set; }

    /// <inheritdoc />
    /// <remarks>With the video memory (on by default, see <see cref="Memory.VideoMemory"/>), a request whose prompt starts
    /// with a stored prefix prefills only the rest and reports the reused tokens as
    /// <see cref="GenerationUsage.CachedPromptTokens"/>.</remarks>
    public IEnumerable<GenerationUpdate> Generate(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        options.Validate();
        cacheOptions.Validate();
        request.Sampling.Validate();
        request.Limits?.Validate(); // also when the media are not decoded (a remembered video)
        return GenerateCore(request, options, CacheOptionsFor(cacheOptions), cancellationToken);
    }

    /// <summary>
    /// The cache options a request runs with on this model: <paramref name="requested"/>, with the Compact profile's
    /// ternary values scaled (<see cref="KVCacheOptions.ScaledTernary"/>) when the model was trained reading them so
    /// (<see cref="ModelInfo.ScaledTernaryValues"/>). Every entry point applies it, so the video memory's keys hold what
    /// the cache holds.
    /// </summary>
    public KVCacheOptions CacheOptionsFor(KVCacheOptions requested)
    {
        ArgumentNullException.ThrowIfNull(requested);
        return Info.ScaledTernaryValues && !requested.ScaledTernary && requested.Profile == CacheProfile.Compact
            && requested.Values is ValueQuantization.Ternary or ValueQuantization.Protected
            ? requested with { ScaledTernary = true }
            : requested;
    }

    /// <inheritdoc />
    public void ConfigureVideoMemory(VideoMemoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var memory = new VideoMemory(_fingerprint, options);
        VideoMemory.Dispose();
        VideoMemory = memory;
    }

    /// <inheritdoc />
    public RememberedVideo RememberVideo(ChatRequest request, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        cacheOptions.Validate();
        request.Sampling.Validate();
        request.Limits?.Validate(); // also when the media are not decoded (a remembered video)
        cancellationToken.ThrowIfCancellationRequested();
        return PromptPrefill.Remember(this, request, CacheOptionsFor(cacheOptions), progress, cancellationToken);
    }

    /// <inheritdoc />
    public RememberedVideo RememberVideo(MediaSource video, FrameSamplingOptions? sampling, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(video);
        var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart() }) })
        {
            Videos = new[] { video },
            Sampling = sampling ?? new FrameSamplingOptions(),
        };
        return RememberVideo(request, cacheOptions, progress, cancellationToken);
    }

    /// <inheritdoc />
    public int ForgetVideo(MediaSource video, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(video);
        return VideoMemory.Forget(MediaHasher.Hash(video, cancellationToken), cancellationToken);
    }

    /// <summary>Counts one decoding of a request's media.</summary>
    internal void CountMediaDecode() => Interlocked.Increment(ref _mediaDecodes);

    /// <summary>Counts one run of the vision tower.</summary>
    internal void CountVisualEncode() => Interlocked.Increment(ref _visualEncodes);

    /// <summary>Frees the weights (<see cref="DisposeModel"/>) and the video memory's in-memory entries.</summary>
    public void Dispose()
    {
        VideoMemory.Dispose();
        DisposeModel();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the family's weights.</summary>
    private protected abstract void DisposeModel();

    /// <summary>The rendered prompt's token ids before placeholder expansion (one placeholder per media item), without decoding media.</summary>
    internal abstract PromptTokens Tokenize(ChatRequest request);

    /// <summary>One media budget for a request: its limits hold for all its media together, under one deadline.</summary>
    private protected static MediaBudget RequestBudget(ChatRequest request)
        => new(request.Limits ?? throw new ArgumentException("ChatRequest.Limits is null.", nameof(request)), sharedDeadline: true);

    /// <summary>Image <paramref name="index"/> of a request decoded under its budget and checked: uint8 [H, W, 3] RGB.</summary>
    private protected static Tensor LoadImage(ChatRequest request, int index, MediaBudget budget, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var source = request.Images[index];
        Tensor image;
        using (var operation = budget.Begin(cancellationToken))
        {
            try
            {
                image = source.LoadImage(budget, operation.Token);
            }
            catch (OperationCanceledException ex)
            {
                throw operation.Stop(source.Name, ex);
            }
        }

        if (image.dim() != 3 || image.shape[2] != 3 || image.dtype != ScalarType.Byte)
        {
            throw new ArgumentException($"Image {index + 1} must be uint8 [H, W, 3] RGB; got {image.dtype} [{string.Join(", ", image.shape)}].", nameof(request));
        }

        return image;
    }

    /// <summary>Decodes and checks the request's media (in the caller's dispose scope).</summary>
    internal abstract DecodedMedia Decode(ChatRequest request, CancellationToken cancellationToken);

    /// <summary>Renders, tokenizes and expands the prompt: one placeholder per visual feature.</summary>
    internal abstract PromptLayout Layout(ChatRequest request, DecodedMedia media);

    /// <summary>Encodes the prompt: embeddings with visual features, position ids, importance scores (in the caller's scope).</summary>
    internal abstract EncodedPrompt Encode(PromptLayout layout, DecodedMedia media, KVCacheOptions cacheOptions);

    /// <summary>A new, empty cache.</summary>
    internal abstract ModelKVCache CreateCache(KVCacheOptions options);

    /// <summary>Token embeddings [B, T, D] for ids [B, T].</summary>
    internal abstract Tensor Embed(Tensor ids);

    /// <summary>Final hidden states [B, T, D].</summary>
    internal abstract Tensor Forward(DecoderInput input);

    /// <summary>Logits [.., V] (float32).</summary>
    internal abstract Tensor Logits(Tensor hidden);

    /// <summary>Position ids of one generated token at <paramref name="position"/>; <see langword="null"/> for the cache's length.</summary>
    internal virtual Tensor? DecodePositionIds(long position) => null;

    /// <summary>Position ids of <paramref name="count"/> text tokens from <paramref name="start"/>; <see langword="null"/> for consecutive positions from the cache's length.</summary>
    internal virtual Tensor? TextPositionIds(long start, int count) => null;

    /// <summary>The position of the token after the first <paramref name="tokens"/> tokens of an encoded prompt.</summary>
    internal virtual long PositionAfter(EncodedPrompt prompt, int tokens) => tokens;

    /// <summary>What the cache holds per token (for measuring what a request's cache will need).</summary>
    internal abstract CacheGeometry CacheGeometry { get; }

    /// <summary>
    /// At least as many prompt tokens as the request's layout will have, known without decoding its media (for admission
    /// by memory); <see langword="null"/> when the family cannot tell (Qwen2.5-VL: its visual tokens follow each frame's size).
    /// </summary>
    internal virtual int? PromptTokenBound(ChatRequest request, PromptTokens tokens) => null;

    /// <summary>Whether a prompt's prefill can run in parts that continue one cache (see <see cref="GenerationSchedulerOptions.PrefillChunkTokens"/>).</summary>
    internal virtual bool CanPrefillInChunks => true;

    /// <summary>The family's batched decoder, if it has one (else a scheduler runs each sequence's step on its own).</summary>
    internal virtual IBatchedDecoder? BatchedDecoder => null;

    /// <summary>The one-at-a-time path: the scheduler's loop with one sequence, so that one place holds the rules of a reply.</summary>
    private IEnumerable<GenerationUpdate> GenerateCore(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var updates = new Queue<GenerationUpdate>();
        Exception? error = null;
        bool ended = false;
        using var scheduler = new GenerationScheduler(this, GenerationSchedulerOptions.OneAtATime);
        scheduler.Add(request, options, cacheOptions, updates.Enqueue, e => (error, ended) = (e, true), cancellationToken);
        while (true)
        {
            scheduler.Step();
            while (updates.TryDequeue(out var update))
            {
                yield return update;
            }

            if (ended)
            {
                if (error is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
                }

                yield break;
            }
        }
    }
}
