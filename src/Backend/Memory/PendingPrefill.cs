using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A request's prefill run one part per <see cref="Advance"/>, so that a scheduler can interleave it with decode steps of
/// running sequences: first the media are decoded and encoded (the vision tower), then the prompt goes through the decoder
/// at most <c>chunkTokens</c> tokens at a time, each part appended to the one cache.
/// </summary>
/// <remarks>
/// Parts run only where a prompt may be continued over its cache: a plain prefill (no video memory plan) of a family that
/// can (<see cref="VideoLanguageModelBase.CanPrefillInChunks"/>; Qwen2.5-VL cannot) with a preset that protects no tokens
/// (protection scores the whole prompt at once). Otherwise the first <see cref="Advance"/> runs
/// <see cref="PromptPrefill.Run(VideoLanguageModelBase, ChatRequest, GenerationOptions, KVCacheOptions, ReusePlan?, Func{Tensor, int}, CancellationToken)"/>
/// whole, so that a prefix stored in the video memory reads the same whatever request made it. A later part attends over
/// the cache the earlier parts left (compressed, as a video memory's later parts do), so a prompt longer than one part can
/// get other tokens than its one-pass prefill; the parts depend only on the prompt and the part size, never on what else
/// runs. Not thread-safe; owns the cache until it hands it over in the result.
/// </remarks>
internal sealed class PendingPrefill : IDisposable
{
    private readonly VideoLanguageModelBase _model;
    private readonly ChatRequest _request;
    private readonly GenerationOptions _options;
    private readonly KVCacheOptions _cacheOptions;
    private readonly int _chunkTokens;
    private EncodedPrompt? _prompt;
    private ModelKVCache? _cache;
    private int _done;

    public PendingPrefill(VideoLanguageModelBase model, ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, int chunkTokens)
    {
        _model = model;
        _request = request;
        _options = options;
        _cacheOptions = cacheOptions;
        _chunkTokens = chunkTokens;
    }

    /// <summary>Prompt tokens prefilled so far (0 until the first part ran).</summary>
    public int PrefilledTokens => _done;

    /// <summary>Runs the next part; returns the prefilled prompt (its cache now the caller's) after the last, else null.</summary>
    public PrefilledPrompt? Advance(Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_prompt is null)
        {
            return Begin(sample, cancellationToken);
        }

        using var scope = NewDisposeScope();
        int total = (int)_prompt.Embeddings.shape[1];
        int end = Math.Min(_done + _chunkTokens, total);
        var hidden = _model.Forward(PromptPrefill.Part(_prompt, _cache!, _done, end));
        _done = end;
        if (end < total)
        {
            return null;
        }

        var result = new PrefilledPrompt(_cache!, _prompt.Layout, sample(_model.Logits(hidden.select(1, -1))[0]), _prompt.NextPosition, 0);
        _cache = null;
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
        _prompt?.Embeddings.Dispose();
        _prompt?.PositionIds?.Dispose();
        _prompt?.Importance?.Dispose();
    }

    /// <summary>The whole prefill when parts do not apply; else decodes and encodes the prompt, keeping it for the parts.</summary>
    private PrefilledPrompt? Begin(Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        var plan = PromptPrefill.PlanFor(_model, _request, _options, _cacheOptions, cancellationToken);
        if (_chunkTokens <= 0 || plan is not null || !_model.CanPrefillInChunks || _cacheOptions.Values == ValueQuantization.Protected)
        {
            return PromptPrefill.Run(_model, _request, _options, _cacheOptions, plan, sample, cancellationToken);
        }

        using var scope = NewDisposeScope();
        var media = PromptPrefill.Decode(_model, _request, cancellationToken);
        var layout = _model.Layout(_request, media);
        PromptPrefill.CheckContext(_model, layout.Ids.Count, _options.MaxNewTokens, layout);
        cancellationToken.ThrowIfCancellationRequested();
        var prompt = PromptPrefill.Encode(_model, layout, media, _cacheOptions);
        _prompt = prompt with
        {
            Embeddings = prompt.Embeddings.DetachFromDisposeScope(),
            PositionIds = prompt.PositionIds?.DetachFromDisposeScope(),
            Importance = prompt.Importance?.DetachFromDisposeScope(),
        };
        _cache = PromptPrefill.NewCache(_model, _cacheOptions);
        return null;
    }
}
