using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>What <see cref="IVideoMemoryModel.RememberVideo(ChatRequest, KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/> stored.</summary>
/// <param name="Key">The stored prefix's key.</param>
/// <param name="PromptTokens">Tokens of the stored prefix (the conversation up to the end of its last media item, visual tokens included):
/// a later request starting with it reports them as <see cref="GenerationUsage.CachedPromptTokens"/>.</param>
/// <param name="VideoTokens">How many of them are video features.</param>
/// <param name="Cache">Bytes the snapshot holds, with what a 16-bit cache of the same tokens would hold.</param>
/// <param name="AlreadyRemembered">Whether a store held it already (nothing was decoded or encoded).</param>
public sealed record RememberedVideo(VideoMemoryKey Key, int PromptTokens, int VideoTokens, CacheMemory Cache, bool AlreadyRemembered);
