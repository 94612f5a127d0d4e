using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend;

/// <summary>
/// What every decoder-based family shares: the generation loop (decode the media, prefill, then one token a step with
/// sampling, stop sequences, streaming text and the end-of-turn rule). A family supplies its media decoding, prompt layout,
/// encoding (visual features, position ids, importance scores) and decoder. Families outside this library implement
/// <see cref="IVideoLanguageModel"/> directly.
/// </summary>
public abstract class VideoLanguageModelBase : IVideoLanguageModel
{
    private readonly HashSet<int> _endOfTurn;

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
    }

    /// <inheritdoc />
    public string Directory { get; }

    /// <inheritdoc />
    public abstract ModelInfo Info { get; }

    /// <summary>The tokenizer.</summary>
    public Qwen2Tokenizer Tokenizer { get; }

    /// <summary>Token ids that end a turn.</summary>
    public IReadOnlySet<int> EndOfTurnTokens => _endOfTurn;

    /// <summary>Test hook: called with each request's cache when it is created.</summary>
    internal Action<ModelKVCache>? CacheCreated { get; set; }

    /// <inheritdoc />
    public IEnumerable<GenerationUpdate> Generate(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        options.Validate();
        cacheOptions.Validate();
        request.Sampling.Validate();
        return GenerateCore(request, options, cacheOptions, cancellationToken);
    }

    /// <inheritdoc />
    public abstract void Dispose();

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

    /// <summary>The model's context length in tokens.</summary>
    private int ContextLength => Info.ContextLength;

    private IEnumerable<GenerationUpdate> GenerateCore(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var cache = CreateCache(cacheOptions);
        CacheCreated?.Invoke(cache);
        using var sampler = new TokenSampler(options);
        var decoder = Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        var stops = new StopSequenceMatcher(options.StopSequences);
        var (layout, next, position) = Prefill(request, options, cache, sampler, cacheOptions, cancellationToken);
        int produced = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (options.StopAtEndOfTurn && _endOfTurn.Contains(next))
            {
                yield return Final(stops.Push(decoder.Flush()) + stops.Flush(), null, FinishReason.EndOfTurn);
                yield break;
            }

            produced++;
            string text = stops.Push(decoder.Push(next));
            if (stops.Stopped)
            {
                yield return Final(text, next, FinishReason.StopSequence);
                yield break;
            }

            if (produced >= options.MaxNewTokens)
            {
                yield return Final(text + stops.Push(decoder.Flush()) + stops.Flush(), next, FinishReason.Length);
                yield break;
            }

            yield return new GenerationUpdate(text, next);
            cancellationToken.ThrowIfCancellationRequested();
            next = Step(next, position++, cache, sampler);
        }

        GenerationUpdate Final(string text, int? token, FinishReason reason)
            => new(text, token, reason, new GenerationUsage(layout.Ids.Count, layout.VideoTokens, layout.ImageTokens, produced, cache.Memory));
    }

    /// <summary>Decodes the media, checks the context, encodes and prefills; the frames are freed before it returns.</summary>
    private (PromptLayout Layout, int Next, long Position) Prefill(ChatRequest request, GenerationOptions options, ModelKVCache cache, TokenSampler sampler, KVCacheOptions cacheOptions, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var media = Decode(request, cancellationToken);
        var layout = Layout(request, media);
        if (layout.Ids.Count + options.MaxNewTokens > ContextLength)
        {
            throw new ArgumentException(
                $"The prompt is {layout.Ids.Count} tokens ({layout.VideoTokens} of video, {layout.ImageTokens} of images) and {options.MaxNewTokens} new tokens were asked for; the model's context is {ContextLength} tokens. Use fewer frames or a smaller MaxNewTokens.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var prompt = Encode(layout, media, cacheOptions);
        var hidden = Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds, Cache = cache, Importance = prompt.Importance });
        int next = sampler.Next(Logits(hidden.select(1, -1))[0]);
        return (layout, next, prompt.NextPosition);
    }

    private int Step(int token, long position, ModelKVCache cache, TokenSampler sampler)
    {
        using var scope = NewDisposeScope();
        var embeds = Embed(tensor(new long[] { token }).reshape(1, 1));
        var hidden = Forward(new DecoderInput(embeds) { PositionIds = DecodePositionIds(position), Cache = cache });
        return sampler.Next(Logits(hidden.select(1, -1))[0]);
    }
}
