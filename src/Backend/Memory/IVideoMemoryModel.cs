using VidKV.AI.Backend.Media;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A model that remembers the videos it has read: the compressed key-value cache of a prompt's prefix up to the end of
/// its last video or image (and of each earlier conversation) is kept in its <see cref="VideoMemory"/>, and later requests
/// starting with the same prefix prefill only the rest. Agents that know a video will be asked about can encode it
/// ahead of time with <c>RememberVideo</c> and free it with <see cref="ForgetVideo"/>.
/// </summary>
/// <remarks>Not thread-safe, like <see cref="IVideoLanguageModel"/>: call these on the model's inference thread, between
/// requests.</remarks>
public interface IVideoMemoryModel : IVideoLanguageModel
{
    /// <summary>The model's video memory: its settings, stores and counters.</summary>
    VideoMemory VideoMemory { get; }

    /// <summary>
    /// Replaces the video memory's settings; the in-memory entries are dropped (a shared store keeps its own).
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid; the message names the value.</exception>
    void ConfigureVideoMemory(VideoMemoryOptions options);

    /// <summary>
    /// Encodes a conversation's media ahead of time: decodes them, runs the vision tower and prefills the prompt up to the
    /// end of its last media item, and stores the compressed cache, so that a later request whose conversation starts the
    /// same way (same turns and text before the media, same media content, frame sampling and cache options) prefills only
    /// its own tokens. Text after the last media item (a question) is not needed and not cached.
    /// </summary>
    /// <param name="request">The conversation up to its media (text after them is ignored), with the media and sampling.</param>
    /// <param name="cacheOptions">The cache preset the later requests will use.</param>
    /// <param name="progress">Receives each stage as it starts; <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Checked between stages and while frames are decoded; nothing is stored when cancelled.</param>
    /// <returns>What is remembered.</returns>
    /// <exception cref="ArgumentException">The request has no media, or it or an option is invalid.</exception>
    /// <exception cref="NotSupportedException">The video memory is off, or <paramref name="cacheOptions"/> uses semantic
    /// token protection (<see cref="Quantization.Cache.ValueQuantization.Protected"/>), whose scores depend on the
    /// question after the video: such caches are never reused.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    RememberedVideo RememberVideo(ChatRequest request, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="RememberVideo(ChatRequest, KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/> for
    /// the commonest conversation: a first user turn holding the video (no system prompt, no image), followed by any
    /// question in the same turn.
    /// </summary>
    /// <param name="video">The video.</param>
    /// <param name="sampling">Which frames are read; <see langword="null"/> for the defaults.</param>
    /// <param name="cacheOptions">The cache preset the later requests will use.</param>
    /// <param name="progress">Receives each stage as it starts.</param>
    /// <param name="cancellationToken">As for the other overload.</param>
    /// <inheritdoc cref="RememberVideo(ChatRequest, KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/>
    RememberedVideo RememberVideo(MediaSource video, FrameSamplingOptions? sampling, KVCacheOptions cacheOptions, IProgress<VideoMemoryProgress>? progress = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes every stored prefix holding this media item (by content: any sampling, cache options or conversation), from
    /// the in-memory store and the shared store.
    /// </summary>
    /// <returns>How many entries were removed (a shared store that cannot count adds none).</returns>
    /// <exception cref="FileNotFoundException">The media file does not exist (its content cannot be hashed).</exception>
    int ForgetVideo(MediaSource video, CancellationToken cancellationToken = default);
}
