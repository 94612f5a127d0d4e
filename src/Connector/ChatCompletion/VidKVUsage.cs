namespace VidKV.AI.Connector;

/// <summary>
/// Keys of the counts a <see cref="VidKVChatClient"/> adds to <c>UsageDetails.AdditionalCounts</c> on the final update of
/// every response.
/// </summary>
public static class VidKVUsage
{
    /// <summary>Prompt tokens that are video features.</summary>
    public const string VideoTokensKey = "vidkv.video_tokens";

    /// <summary>Prompt tokens that are image features.</summary>
    public const string ImageTokensKey = "vidkv.image_tokens";

    /// <summary>Bytes the compressed key-value cache held at the end of generation (codes, metadata and residual).</summary>
    public const string KVBytesKey = "vidkv.kv_bytes";

    /// <summary>Bytes an FP16 cache of the same tokens would have held.</summary>
    public const string KVFp16BytesKey = "vidkv.kv_fp16_bytes";

    /// <summary>
    /// Prompt tokens read from the video memory (a remembered video or an earlier turn of the conversation) instead of being
    /// prefilled; also in <c>UsageDetails.CachedInputTokenCount</c>.
    /// </summary>
    public const string CachedPromptTokensKey = "vidkv.cached_prompt_tokens";
}
