using System.Globalization;
using System.IO.Hashing;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A model's memory of the prompts it has read: the compressed key-value caches of prompt prefixes that end with a
/// video or image (and of earlier conversations about them), so that a later request starting with the same prefix
/// prefills only its own tokens and never decodes or encodes the media again.
/// </summary>
/// <remarks>
/// <para><b>Keys.</b> An entry is keyed by everything that decides its bits: the model's fingerprint (its JSON files,
/// safetensors headers and samples of its weights, computed at load), its computation type and device, every
/// <see cref="KVCacheOptions"/> field, the <see cref="FrameSamplingOptions"/>, the content hash of every media item, and the
/// prompt's token ids before placeholder expansion up to the cut (with the media hashes and the sampling they decide the
/// expanded tokens, so a lookup needs no decoding). The entry keeps the expanded layout (token ids, video spans).</para>
/// <para><b>Where prompts are cut.</b> At the end of the last media item (so "describe it", "count", "when" about one
/// video share its cache), and at the end of the conversation before the new assistant turn (the next turn of a chat
/// starts with it). The longest stored prefix wins. A request of a conversation with media that finds nothing prefills
/// its prompt in those parts and stores them: the media part runs exactly as a fresh prefill does (exact attention),
/// the rest attends over the compressed cache, exactly as it does when the prefix is reused, so an answer does not
/// depend on whether its video was in memory. (LLaVA-OneVision's template renders a past assistant turn as
/// "&lt;|im_start|&gt;assistant \n" but the generation prompt as "&lt;|im_start|&gt;assistant\n", so the cache of a
/// generated reply is never a prefix of the next prompt; the next turn re-reads the reply's few tokens.)</para>
/// <para><b>Not reused.</b> Requests without media, requests with <see cref="Generation.GenerationOptions.UseVideoMemory"/>
/// false, and caches with semantic token protection (<see cref="ValueQuantization.Protected"/>): its scores rank each
/// video token by its similarity to the text after the video (the question), so a cache made for one question would
/// protect other tokens than a fresh prefill for the next; such requests always prefill in one pass.</para>
/// <para><b>Threads.</b> Used by the model on its inference thread; the counters may be read from any thread.</para>
/// </remarks>
public sealed class VideoMemory : IDisposable
{
    private readonly ILogger _logger;
    private long _hits, _misses, _saves, _cachedTokens;

    internal VideoMemory(string modelFingerprint, VideoMemoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ModelFingerprint = modelFingerprint;
        Options = options;
        _logger = options.Logger ?? NullLogger.Instance;
        InMemoryStore = options.Enabled && options.MemoryBudgetBytes > 0 ? new InMemoryVideoMemoryStore(options.MemoryBudgetBytes) : null;
    }

    /// <summary>The settings.</summary>
    public VideoMemoryOptions Options { get; }

    /// <summary>The model's fingerprint (32 hex digits), part of every key.</summary>
    public string ModelFingerprint { get; }

    /// <summary>The in-memory store; <see langword="null"/> when the memory is off or its budget is 0.</summary>
    public InMemoryVideoMemoryStore? InMemoryStore { get; }

    /// <summary>The shared store (<see cref="VideoMemoryOptions.SharedStore"/>).</summary>
    public IVideoMemoryStore? SharedStore => Options.SharedStore;

    /// <summary>Requests (and <c>RememberVideo</c> calls) that reused a stored prefix.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Requests (and <c>RememberVideo</c> calls) that could have reused a prefix but found none.</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Prefixes stored.</summary>
    public long Saves => Interlocked.Read(ref _saves);

    /// <summary>Prompt tokens read from stored prefixes instead of being prefilled.</summary>
    public long CachedPromptTokens => Interlocked.Read(ref _cachedTokens);

    /// <summary>The content hash of a media item, as entries are tagged with it.</summary>
    /// <exception cref="FileNotFoundException">The media file does not exist.</exception>
    public static string HashMedia(MediaSource media, CancellationToken cancellationToken = default) => MediaHasher.Hash(media, cancellationToken);

    /// <summary>Drops the in-memory entries (a shared store keeps its own).</summary>
    public void Dispose() => InMemoryStore?.Dispose();

    /// <summary>Where the request may be cut and the keys of those prefixes; <see langword="null"/> when it is not reused.</summary>
    internal ReusePlan? Plan(ChatRequest request, PromptTokens tokens, KVCacheOptions options, ModelInfo info, CancellationToken cancellationToken)
    {
        if (!Options.Enabled || options.Values == ValueQuantization.Protected || tokens.MediaEnd <= 0 || tokens.MediaEnd >= tokens.Ids.Count)
        {
            return null;
        }

        var cuts = new[] { tokens.MediaEnd }.Concat(tokens.TurnEnds.Where(t => t > tokens.MediaEnd && t < tokens.Ids.Count)).Distinct().Order().ToArray();
        var media = request.Videos.Concat(request.Images).Select(m => MediaHasher.Hash(m, cancellationToken)).ToArray();
        var context = new StringBuilder()
            .Append("vidkv-video-memory/1\n")
            .Append(ModelFingerprint).Append('\n')
            .Append(info.Family).Append(' ').Append(info.DType).Append(' ').Append(info.Device).Append('\n')
            .Append(Describe(options)).Append('\n')
            .Append(Describe(request.Sampling)).Append('\n')
            .Append("videos ").Append(request.Videos.Count).Append(" images ").Append(request.Images.Count).Append('\n')
            .AppendJoin('\n', media);
        string contextHash = Convert.ToHexStringLower(XxHash128.Hash(Encoding.UTF8.GetBytes(context.ToString())));
        return new ReusePlan(contextHash, media, tokens, cuts);
    }

    /// <summary>The longest stored prefix of the plan's cuts, forked into request caches; <see langword="null"/> on a miss.</summary>
    internal VideoMemoryHit? TryRestore(ReusePlan plan, KVCacheOptions options, IEnumerable<int> cuts, CancellationToken cancellationToken)
    {
        foreach (int cut in cuts.OrderDescending())
        {
            var key = plan.Key(cut);
            var hit = Wait(InMemoryStore?.TryRestoreAsync(key, options, cancellationToken));
            if (hit is null && SharedStore is { } shared && (hit = Wait(shared.TryRestoreAsync(key, options, cancellationToken))) is not null && InMemoryStore is { } local)
            {
                // Keep what another process or an earlier run stored in memory too (sharing the forked caches' blocks).
                var caches = hit.TakeCaches();
                hit = new VideoMemoryHit(hit.Prefix, caches);
                Complete(local.SaveAsync(key, hit.Prefix, KVCacheSnapshot.Create(caches), cancellationToken));
            }

            if (hit is null)
            {
                continue;
            }

            if (!plan.Matches(hit.Prefix, cut))
            {
                hit.Dispose(); // a hash collision or a store that returns other entries: never reuse it
                continue;
            }

            Interlocked.Increment(ref _hits);
            Interlocked.Add(ref _cachedTokens, hit.Prefix.Ids.Count);
            VideoMemoryLog.Reused(_logger, hit.Prefix.Ids.Count, key.Value);
            return hit;
        }

        Interlocked.Increment(ref _misses);
        return null;
    }

    /// <summary>Stores the cache's content (it holds exactly the prefix) in every store.</summary>
    internal void Save(VideoMemoryKey key, VideoMemoryPrefix prefix, ModelKVCache cache, CancellationToken cancellationToken)
    {
        if (InMemoryStore is { } local)
        {
            Complete(local.SaveAsync(key, prefix, KVCacheSnapshot.Create(cache.Layers), cancellationToken));
        }

        if (SharedStore is { } shared)
        {
            try
            {
                Complete(shared.SaveAsync(key, prefix, KVCacheSnapshot.Create(cache.Layers), cancellationToken));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                VideoMemoryLog.SaveFailed(_logger, key.Value, e.Message); // the answer does not need the shared copy
            }
        }

        Interlocked.Increment(ref _saves);
        VideoMemoryLog.Stored(_logger, prefix.Ids.Count, cache.Memory.TotalBytes, key.Value);
    }

    /// <summary>Removes every entry holding the media item with this hash.</summary>
    internal int Forget(string mediaHash, CancellationToken cancellationToken)
    {
        int removed = Wait(InMemoryStore?.RemoveMediaAsync(mediaHash, cancellationToken));
        if (SharedStore is { } shared)
        {
            removed += Math.Max(0, Wait(shared.RemoveMediaAsync(mediaHash, cancellationToken)));
        }

        return removed;
    }

    /// <summary>Every public instance property, invariant, in name order: a new option changes the keys by itself.</summary>
    internal static string Describe(object options) => string.Join(';', options.GetType()
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .OrderBy(p => p.Name, StringComparer.Ordinal)
        .Select(p => $"{p.Name}={p.GetValue(options) switch
        {
            null => "null",
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            TimeSpan t => t.Ticks.ToString(CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            var v => v.ToString(),
        }}"));

    /// <summary>Waits for a store call on the inference thread (which has no synchronization context).</summary>
    private static T? Wait<T>(ValueTask<T>? task) => task is not { } t ? default : t.IsCompletedSuccessfully ? t.Result : t.AsTask().GetAwaiter().GetResult();

    private static T Wait<T>(ValueTask<T> task) => task.IsCompletedSuccessfully ? task.Result : task.AsTask().GetAwaiter().GetResult();

    private static void Complete(ValueTask task)
    {
        if (!task.IsCompletedSuccessfully)
        {
            task.AsTask().GetAwaiter().GetResult();
        }
    }
}
