using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// The prefill of a request with the video memory: reuse the longest stored prefix and prefill only the rest, or prefill
/// in parts (the prefix up to the media's end with exact attention, each later part over the compressed cache) and store
/// each prefix. Without a plan (memory off, no media, protected values) the prompt is prefilled in one pass.
/// </summary>
internal static class PromptPrefill
{
    public static PrefilledPrompt Run(VideoLanguageModelBase model, ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, Func<Tensor, int> sample, CancellationToken cancellationToken)
        => Run(model, request, options, cacheOptions, PlanFor(model, request, options, cacheOptions, cancellationToken), sample, cancellationToken);

    /// <summary>The video memory's plan for the request; <see langword="null"/> when the prompt is prefilled in one pass.</summary>
    public static ReusePlan? PlanFor(VideoLanguageModelBase model, ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken)
        => options.UseVideoMemory ? model.VideoMemory.Plan(request, model.Tokenize(request), cacheOptions, model.Info, cancellationToken) : null;

    /// <summary>Runs the prefill with the plan of <see cref="PlanFor"/>.</summary>
    public static PrefilledPrompt Run(VideoLanguageModelBase model, ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, ReusePlan? plan, Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        try
        {
            return RunCore(model, request, options, cacheOptions, plan, sample, cancellationToken);
        }
        finally
        {
            NativeHeap.Release(); // the prefill's temporaries are freed: hand their memory back (see NativeHeap)
        }
    }

    private static PrefilledPrompt RunCore(VideoLanguageModelBase model, ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, ReusePlan? plan, Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        if (plan is null)
        {
            return Fresh(model, request, options.MaxNewTokens, cacheOptions, sample, cancellationToken);
        }

        var memory = model.VideoMemory;
        var hit = memory.TryRestore(plan, cacheOptions, plan.Cuts, cancellationToken);
        return hit is null
            ? Split(model, memory, plan, request, options.MaxNewTokens, cacheOptions, sample, cancellationToken)
            : Continue(model, memory, plan, hit, options.MaxNewTokens, cacheOptions, sample, cancellationToken);
    }

    /// <summary>Prefills and stores the prefix up to the end of the media (RememberVideo).</summary>
    public static RememberedVideo Remember(VideoLanguageModelBase model, ChatRequest request, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress, CancellationToken cancellationToken)
    {
        try
        {
            return RememberCore(model, request, cacheOptions, progress, cancellationToken);
        }
        finally
        {
            NativeHeap.Release();
        }
    }

    private static RememberedVideo RememberCore(VideoLanguageModelBase model, ChatRequest request, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress, CancellationToken cancellationToken)
    {
        var memory = model.VideoMemory;
        if (!memory.Options.Enabled)
        {
            throw new NotSupportedException("The video memory is off (VideoMemoryOptions.Enabled is false): there is nowhere to remember the video.");
        }

        if (cacheOptions.Values == ValueQuantization.Protected)
        {
            throw new NotSupportedException(
                $"The cache preset '{cacheOptions.Preset}' protects tokens by their similarity to the question after the video (semantic token protection), so its cache cannot be made before the question and is never reused; use a preset without protection, e.g. vidkv-1.5/1.58.");
        }

        var tokens = model.Tokenize(request);
        if (request.Videos.Count + request.Images.Count == 0 || tokens.MediaEnd == 0)
        {
            throw new ArgumentException("The request holds no video or image to remember.", nameof(request));
        }

        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Lookup, 0));
        var plan = memory.Plan(request, tokens, cacheOptions, model.Info, cancellationToken)!;
        int cut = plan.Cuts[0];
        var key = plan.Key(cut);
        using (var hit = memory.TryRestore(plan, cacheOptions, new[] { cut }, cancellationToken))
        {
            if (hit is not null)
            {
                using var stored = new ModelKVCache(hit.TakeCaches(), cacheOptions);
                progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Done, 1));
                return new RememberedVideo(key, hit.Prefix.Ids.Count, hit.Prefix.VideoTokens, stored.Memory, AlreadyRemembered: true);
            }
        }

        using var scope = NewDisposeScope();
        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Decoding, 0.02));
        var media = Decode(model, request, cancellationToken);
        var layout = model.Layout(request, media);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Encoding, 0.1));
        var prompt = Encode(model, layout, media, cacheOptions);
        int end = cut + layout.Ids.Count - tokens.Ids.Count;
        CheckContext(model, end, 1, layout);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Prefilling, 0.25));
        using var cache = model.CreateCache(cacheOptions);
        model.Forward(Part(prompt, cache, 0, end));
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Storing, 0.98));
        var prefix = Prefix(model, plan, cut, layout, prompt, end);
        memory.Save(key, prefix, cache, cancellationToken);
        progress?.Report(new VideoMemoryProgress(VideoMemoryStage.Done, 1));
        return new RememberedVideo(key, end, prefix.VideoTokens, cache.Memory, AlreadyRemembered: false);
    }

    /// <summary>The whole prompt in one pass (no reuse).</summary>
    private static PrefilledPrompt Fresh(VideoLanguageModelBase model, ChatRequest request, int maxNewTokens, KVCacheOptions cacheOptions, Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var media = Decode(model, request, cancellationToken);
        var layout = model.Layout(request, media);
        CheckContext(model, layout.Ids.Count, maxNewTokens, layout);
        cancellationToken.ThrowIfCancellationRequested();
        var prompt = Encode(model, layout, media, cacheOptions);
        var cache = NewCache(model, cacheOptions);
        try
        {
            var hidden = model.Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds, Cache = cache, Importance = prompt.Importance });
            return new PrefilledPrompt(cache, layout, sample(model.Logits(hidden.select(1, -1))[0]), prompt.NextPosition, 0);
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    /// <summary>Nothing stored: prefill the prompt in parts at the plan's cuts, storing each prefix.</summary>
    private static PrefilledPrompt Split(VideoLanguageModelBase model, VideoMemory memory, ReusePlan plan, ChatRequest request, int maxNewTokens, KVCacheOptions cacheOptions, Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var media = Decode(model, request, cancellationToken);
        var layout = model.Layout(request, media);
        CheckContext(model, layout.Ids.Count, maxNewTokens, layout);
        cancellationToken.ThrowIfCancellationRequested();
        var prompt = Encode(model, layout, media, cacheOptions);
        int offset = layout.Ids.Count - plan.Tokens.Ids.Count; // every expansion lies before the first cut
        var cache = NewCache(model, cacheOptions);
        try
        {
            int start = 0;
            Tensor? hidden = null;
            foreach (int cut in plan.SaveCuts(0).Append(plan.Tokens.Ids.Count))
            {
                int end = cut + offset;
                hidden = model.Forward(Part(prompt, cache, start, end));
                if (cut < plan.Tokens.Ids.Count)
                {
                    memory.Save(plan.Key(cut), Prefix(model, plan, cut, layout, prompt, end), cache, cancellationToken);
                }

                start = end;
                cancellationToken.ThrowIfCancellationRequested();
            }

            return new PrefilledPrompt(cache, layout, sample(model.Logits(hidden!.select(1, -1))[0]), prompt.NextPosition, 0);
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    /// <summary>A stored prefix was found: prefill only the rest (text), storing the conversation's end when it is new.</summary>
    private static PrefilledPrompt Continue(VideoLanguageModelBase model, VideoMemory memory, ReusePlan plan, VideoMemoryHit hit, int maxNewTokens, KVCacheOptions cacheOptions, Func<Tensor, int> sample, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var prefix = hit.Prefix;
        int reused = prefix.PromptIds.Count;
        var cache = new ModelKVCache(hit.TakeCaches(), cacheOptions);
        hit.Dispose();
        try
        {
            model.CacheCreated?.Invoke(cache);
            var rest = plan.Tokens.Ids.Skip(reused).ToArray();
            var layout = new PromptLayout(prefix.Ids.Concat(rest).ToArray(), prefix.VideoTokens, prefix.ImageTokens, prefix.VideoSpans);
            CheckContext(model, layout.Ids.Count, maxNewTokens, layout);
            var embeds = model.Embed(tensor(rest.Select(i => (long)i).ToArray()).reshape(1, -1));
            int start = 0;
            Tensor? hidden = null;
            foreach (int cut in plan.SaveCuts(reused).Append(plan.Tokens.Ids.Count))
            {
                int length = cut - reused - start;
                hidden = model.Forward(new DecoderInput(embeds.narrow(1, start, length))
                {
                    PositionIds = model.TextPositionIds(prefix.NextPosition + start, length),
                    Cache = cache,
                });
                start += length;
                if (cut < plan.Tokens.Ids.Count)
                {
                    var stored = new VideoMemoryPrefix(plan.Tokens.Ids.Take(cut).ToArray(), layout.Ids.Take(prefix.Ids.Count + start).ToArray(), prefix.VideoTokens, prefix.ImageTokens, prefix.VideoSpans, prefix.NextPosition + start);
                    memory.Save(plan.Key(cut), stored, cache, cancellationToken);
                }

                cancellationToken.ThrowIfCancellationRequested();
            }

            return new PrefilledPrompt(cache, layout, sample(model.Logits(hidden!.select(1, -1))[0]), prefix.NextPosition + rest.Length, prefix.Ids.Count);
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    internal static ModelKVCache NewCache(VideoLanguageModelBase model, KVCacheOptions cacheOptions)
    {
        var cache = model.CreateCache(cacheOptions);
        model.CacheCreated?.Invoke(cache);
        return cache;
    }

    internal static DecodedMedia Decode(VideoLanguageModelBase model, ChatRequest request, CancellationToken cancellationToken)
    {
        if (request.Videos.Count + request.Images.Count > 0)
        {
            model.CountMediaDecode();
        }

        return model.Decode(request, cancellationToken);
    }

    internal static EncodedPrompt Encode(VideoLanguageModelBase model, PromptLayout layout, DecodedMedia media, KVCacheOptions cacheOptions)
    {
        if (media.Videos.Count + media.Images.Count > 0)
        {
            model.CountVisualEncode();
        }

        return model.Encode(layout, media, cacheOptions);
    }

    /// <summary>Tokens [start, end) of an encoded prompt as a decoder input over the cache (scores only with the first part).</summary>
    internal static DecoderInput Part(EncodedPrompt prompt, ModelKVCache cache, int start, int end) => new(prompt.Embeddings.narrow(1, start, end - start))
    {
        PositionIds = prompt.PositionIds?.narrow(-1, start, end - start),
        Cache = cache,
        Importance = start == 0 ? prompt.Importance?.narrow(-1, 0, end) : null,
    };

    private static VideoMemoryPrefix Prefix(VideoLanguageModelBase model, ReusePlan plan, int cut, PromptLayout layout, EncodedPrompt prompt, int end)
        => new(plan.Tokens.Ids.Take(cut).ToArray(), layout.Ids.Take(end).ToArray(), layout.VideoTokens, layout.ImageTokens, layout.VideoSpans, model.PositionAfter(prompt, end));

    internal static void CheckContext(VideoLanguageModelBase model, int promptTokens, int maxNewTokens, PromptLayout layout)
    {
        if (promptTokens + maxNewTokens > model.Info.ContextLength)
        {
            throw new ArgumentException(
                $"The prompt is {layout.Ids.Count} tokens ({layout.VideoTokens} of video, {layout.ImageTokens} of images) and {maxNewTokens} new tokens were asked for; the model's context is {model.Info.ContextLength} tokens. Use fewer frames or a smaller MaxNewTokens.");
        }
    }
}
