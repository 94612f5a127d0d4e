using VidKV.AI.Backend.Generation;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend;

/// <summary>
/// A loaded video-language model: it reads a conversation with videos and images and generates a reply over a compressed
/// key-value cache. Each model family (LLaVA-OneVision, ...) implements it with its own chat template, token counting,
/// preprocessing, position ids and cache layout; <see cref="VideoLanguageModel.Load"/> picks the family of a checkpoint.
/// </summary>
/// <remarks>
/// Not thread-safe: TorchSharp's dispose scopes belong to a thread, so run requests one at a time on one thread (the
/// connector's inference worker does). <see cref="Generate"/> is lazy; each step runs on the thread that advances it.
/// </remarks>
public interface IVideoLanguageModel : IDisposable
{
    /// <summary>The checkpoint folder.</summary>
    string Directory { get; }

    /// <summary>What the model is and accepts.</summary>
    ModelInfo Info { get; }

    /// <summary>
    /// Generates a reply, one update per token. Media are decoded and encoded, and the key-value cache is created, for this
    /// call; everything is freed when the enumeration ends, is abandoned (disposed) or fails. Cancellation is checked
    /// while media are decoded and before every token.
    /// </summary>
    /// <exception cref="ArgumentException">The request or an option is invalid (placeholder and media counts differ,
    /// prompt longer than the context, bad pixels); the message says which.</exception>
    /// <exception cref="FileNotFoundException">A media file does not exist.</exception>
    /// <exception cref="InvalidDataException">A media item cannot be decoded; the message names it.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    IEnumerable<GenerationUpdate> Generate(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default);
}
