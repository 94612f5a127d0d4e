using System.ComponentModel;
using System.Diagnostics;
using System.Net.Http.Headers;
using Microsoft.Extensions.AI;
using Microsoft.SemanticKernel;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector;

/// <summary>
/// Semantic Kernel functions that let an agent or a prompt ask questions about a video (a local file, a <c>file:</c> URL,
/// or an http(s) URL when the plugin has an <see cref="HttpClient"/>), answered by a video <see cref="IChatClient"/>
/// such as <see cref="VidKVChatClient"/>.
/// </summary>
/// <remarks>
/// Several questions about one video reuse its compressed cache when the client has a video memory (a
/// <see cref="VidKVChatClient"/> does by default): <see cref="AnswerAsync"/> reports how many prompt tokens came from it and
/// the time taken. Thread-safe when the chat client is. Register it with <c>kernelBuilder.Plugins.AddVideoPlugin()</c> (the client is
/// resolved from the kernel's services) or <c>kernel.Plugins.AddFromObject(new VideoPlugin(client), "video")</c>.
/// </remarks>
public sealed class VideoPlugin
{
    private readonly IChatClient _chatClient;
    private readonly HttpClient? _httpClient;

    /// <summary>Creates the plugin.</summary>
    /// <param name="chatClient">The client that reads videos.</param>
    /// <param name="httpClient">Downloads http(s) videos; <see langword="null"/> to accept local files only.</param>
    public VideoPlugin(IChatClient chatClient, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(chatClient);
        _chatClient = chatClient;
        _httpClient = httpClient;
    }

    /// <summary>Largest video downloaded from a URL, in bytes (default 256 MiB).</summary>
    public long MaxDownloadBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>Frames sampled from the video; <see langword="null"/> for the client's default.</summary>
    public int? FrameCount { get; init; }

    /// <summary>Answers a question about a video.</summary>
    /// <param name="video">A local path, a file: URL, or an http(s) URL.</param>
    /// <param name="question">The question.</param>
    /// <param name="cancellationToken">Cancels the download and the generation.</param>
    /// <returns>The model's answer.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="NotSupportedException">An http(s) URL and no <see cref="HttpClient"/>, or not a video or image.</exception>
    [KernelFunction("ask_about_video")]
    [Description("Answers a question about a video: what is in it, what happens, what moves, what appears or disappears, and when.")]
    public async Task<string> AskAboutVideoAsync(
        [Description("The video: a local file path, a file: URL or an http(s) URL.")] string video,
        [Description("The question about the video, in plain words.")] string question,
        CancellationToken cancellationToken = default)
        => (await AnswerAsync(video, question, cancellationToken).ConfigureAwait(false)).Text;

    /// <summary>
    /// Answers a question about a video and says what it cost: the prompt tokens the client's video memory supplied and the
    /// time taken. With a <see cref="VidKVChatClient"/>, the first question about a video encodes it and remembers its
    /// compressed cache; every later question about the same video (same file content and frame count) reads it from there
    /// and prefills only its own tokens.
    /// </summary>
    /// <param name="video">A local path, a file: URL, or an http(s) URL.</param>
    /// <param name="question">The question.</param>
    /// <param name="cancellationToken">Cancels the download and the generation.</param>
    /// <returns>The answer with its token counts and times.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="NotSupportedException">An http(s) URL and no <see cref="HttpClient"/>, or not a video or image.</exception>
    public async Task<VideoAnswer> AnswerAsync(string video, string question, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(video);
        ArgumentException.ThrowIfNullOrWhiteSpace(question);
        long start = Stopwatch.GetTimestamp();
        AIContent media = await OpenAsync(video, cancellationToken).ConfigureAwait(false);
        var options = new ChatOptions();
        if (FrameCount is { } frames)
        {
            options.WithFrameCount(frames);
        }

        var updates = new List<ChatResponseUpdate>();
        TimeSpan? firstToken = null;
        await foreach (var update in _chatClient.GetStreamingResponseAsync(
            [new ChatMessage(ChatRole.User, [media, new Microsoft.Extensions.AI.TextContent(question)])], options, cancellationToken).ConfigureAwait(false))
        {
            if (firstToken is null && !string.IsNullOrEmpty(update.Text))
            {
                firstToken = Stopwatch.GetElapsedTime(start);
            }

            updates.Add(update);
        }

        var elapsed = Stopwatch.GetElapsedTime(start);
        var response = updates.ToChatResponse();
        return new VideoAnswer(response.Text.Trim(), response.Usage?.InputTokenCount ?? 0, response.Usage?.CachedInputTokenCount ?? 0, firstToken ?? elapsed, elapsed);
    }

    /// <summary>Describes what happens in a video.</summary>
    /// <param name="video">A local path, a file: URL, or an http(s) URL.</param>
    /// <param name="cancellationToken">Cancels the download and the generation.</param>
    /// <returns>The model's description.</returns>
    [KernelFunction("describe_video")]
    [Description("Describes what happens in a video.")]
    public Task<string> DescribeVideoAsync(
        [Description("The video: a local file path, a file: URL or an http(s) URL.")] string video,
        CancellationToken cancellationToken = default)
        => AskAboutVideoAsync(video, "Describe what happens in this video.", cancellationToken);

    private async Task<AIContent> OpenAsync(string video, CancellationToken cancellationToken)
    {
        if (Uri.TryCreate(video, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
        {
            if (_httpClient is null)
            {
                throw new NotSupportedException($"'{video}' is a web address, and this VideoPlugin has no HttpClient to download it; give it one, or pass a local file.");
            }

            using var response = await _httpClient.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            if (response.Content.Headers.ContentLength > MaxDownloadBytes)
            {
                throw new InvalidDataException($"'{video}' is {response.Content.Headers.ContentLength:N0} bytes; this plugin downloads at most {MaxDownloadBytes:N0}.");
            }

            byte[] bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            string type = MediaType(response.Content.Headers.ContentType, uri.AbsolutePath);
            return new DataContent(bytes, type) { Name = Path.GetFileName(uri.AbsolutePath) is { Length: > 0 } n ? n : video };
        }

        string path = uri is { IsFile: true } ? uri.LocalPath : video;
        return VidKVMedia.FromFile(path, Path.GetExtension(path).Equals(".gif", StringComparison.OrdinalIgnoreCase) ? "video/gif" : null);
    }

    private static string MediaType(MediaTypeHeaderValue? header, string path) =>
        header?.MediaType is { } type && (type.StartsWith("video/", StringComparison.OrdinalIgnoreCase) || type.StartsWith("image/", StringComparison.OrdinalIgnoreCase))
            ? type
            : VidKVMedia.MediaTypeOf(path);
}
