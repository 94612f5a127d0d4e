using System.ComponentModel;
using Microsoft.Extensions.AI;
using ModelContextProtocol;
using ModelContextProtocol.Server;
using VidKV.AI.Connector;
using VidKV.AI.Server;

namespace VidKV.AI.Mcp;

/// <summary>
/// The video tools: ask about a video, describe it. A video is a path the media roots allow (absolute, a <c>file:</c>
/// URL, or relative to a root) or a data URL (<c>data:video/mp4;base64,...</c>). Errors reach the client as tool
/// errors with the server's paths, pointers and file bytes removed.
/// </summary>
[McpServerToolType]
public sealed class VideoTools
{
    private readonly IChatClient _chat;
    private readonly MediaRoots _media;

    /// <summary>Creates the tools over a video chat client and the media roots.</summary>
    public VideoTools(IChatClient chat, MediaRoots media)
    {
        _chat = chat ?? throw new ArgumentNullException(nameof(chat));
        _media = media ?? throw new ArgumentNullException(nameof(media));
    }

    /// <summary>Answers a question about a video.</summary>
    [McpServerTool(Name = "ask_about_video", ReadOnly = true, Idempotent = true, OpenWorld = false)]
    [Description("Answers a question about a video: what is in it, what happens, what moves, what appears or disappears, and when.")]
    public Task<string> AskAboutVideoAsync(
        [Description("The video: a path under the server's media roots (absolute, file: URL, or relative to a root), or a data URL (data:video/mp4;base64,...).")] string video,
        [Description("The question about the video, in plain words.")] string question,
        [Description("Frames to sample from the video (default: the server's setting).")] int? frameCount = null,
        [Description("Where to start reading the video, in seconds.")] double? startSeconds = null,
        [Description("Where to stop reading the video, in seconds.")] double? endSeconds = null,
        [Description("The longest answer, in tokens (default: the server's setting).")] int? maxTokens = null,
        CancellationToken cancellationToken = default)
        => AskAsync(video, question, frameCount, startSeconds, endSeconds, maxTokens, cancellationToken);

    /// <summary>Describes what happens in a video.</summary>
    [McpServerTool(Name = "describe_video", ReadOnly = true, Idempotent = true, OpenWorld = false)]
    [Description("Describes what happens in a video.")]
    public Task<string> DescribeVideoAsync(
        [Description("The video: a path under the server's media roots (absolute, file: URL, or relative to a root), or a data URL (data:video/mp4;base64,...).")] string video,
        [Description("Frames to sample from the video (default: the server's setting).")] int? frameCount = null,
        [Description("The longest answer, in tokens (default: the server's setting).")] int? maxTokens = null,
        CancellationToken cancellationToken = default)
        => AskAsync(video, "Describe what happens in this video.", frameCount, null, null, maxTokens, cancellationToken);

    /// <summary>Encodes a video ahead of time so later questions about it are answered from its compressed cache.</summary>
    [McpServerTool(Name = "remember_video", Idempotent = true, OpenWorld = false)]
    [Description("Reads a video ahead of time and keeps its compressed memory, so that later questions about it (with the same frameCount) are answered without reading it again.")]
    public async Task<string> RememberVideoAsync(
        [Description("The video: a path under the server's media roots (absolute, file: URL, or relative to a root), or a data URL (data:video/mp4;base64,...).")] string video,
        [Description("Frames to sample from the video (default: the server's setting); later questions must use the same.")] int? frameCount = null,
        CancellationToken cancellationToken = default)
    {
        try
        {
            var client = _chat.GetService<VidKVChatClient>() ?? throw new NotSupportedException("This server's model has no video memory.");
            var options = new ChatOptions();
            if (frameCount is { } frames)
            {
                options.WithFrameCount(frames);
            }

            var media = await OpenAsync(video, cancellationToken).ConfigureAwait(false);
            var remembered = await client.RememberVideoAsync(media, options, null, cancellationToken).ConfigureAwait(false);
            return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{(remembered.AlreadyRemembered ? "Already remembered" : "Remembered")}: {remembered.VideoTokens} video tokens in {remembered.KVBytes:N0} bytes (a 16-bit cache would hold {remembered.KVFp16Bytes:N0}).");
        }
        catch (Exception e) when (e is ApiError or ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException or FormatException or ModelBusyException)
        {
            throw new McpException(ErrorText.ForClient(e.Message, "frameCount").Replace("frame_count", "frameCount", StringComparison.Ordinal));
        }
    }

    /// <summary>Drops a remembered video.</summary>
    [McpServerTool(Name = "forget_video", Destructive = true, Idempotent = true, OpenWorld = false)]
    [Description("Drops everything remembered about a video (any frameCount).")]
    public async Task<string> ForgetVideoAsync(
        [Description("The video, as given to remember_video or a question.")] string video,
        CancellationToken cancellationToken = default)
    {
        try
        {
            var client = _chat.GetService<VidKVChatClient>() ?? throw new NotSupportedException("This server's model has no video memory.");
            var media = await OpenAsync(video, cancellationToken).ConfigureAwait(false);
            int removed = await client.ForgetVideoAsync(media, cancellationToken).ConfigureAwait(false);
            return removed > 0 ? $"Forgot {removed} remembered prefix(es) of the video." : "Nothing was remembered about this video.";
        }
        catch (Exception e) when (e is ApiError or ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException or FormatException or ModelBusyException)
        {
            throw new McpException(ErrorText.ForClient(e.Message, "maxTokens"));
        }
    }

    private async Task<string> AskAsync(string video, string question, int? frameCount, double? startSeconds, double? endSeconds, int? maxTokens, CancellationToken cancellationToken)
    {
        try
        {
            if (string.IsNullOrWhiteSpace(question))
            {
                throw new ArgumentException("'question' is empty; ask something about the video.");
            }

            var options = new ChatOptions { MaxOutputTokens = maxTokens };
            if (frameCount is { } frames)
            {
                options.WithFrameCount(frames);
            }

            if (startSeconds is not null || endSeconds is not null)
            {
                options.WithTimeRange(startSeconds is { } s ? TimeSpan.FromSeconds(s) : null, endSeconds is { } e ? TimeSpan.FromSeconds(e) : null);
            }

            var media = await OpenAsync(video, cancellationToken).ConfigureAwait(false);
            var reply = await _chat.GetResponseAsync([new ChatMessage(ChatRole.User, [media, new TextContent(question)])], options, cancellationToken).ConfigureAwait(false);
            return reply.Text;
        }
        catch (Exception e) when (e is ApiError or ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException or FormatException or ModelBusyException)
        {
            throw new McpException(ErrorText.ForClient(e.Message, "maxTokens")
                .Replace("max_tokens", "maxTokens", StringComparison.Ordinal)
                .Replace("frame_count", "frameCount", StringComparison.Ordinal));
        }
    }

    private async Task<DataContent> OpenAsync(string video, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(video))
        {
            throw new ArgumentException("'video' is empty; give a path under the server's media roots or a data URL.");
        }

        if (video.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            DataContent data;
            try
            {
                data = new DataContent(video);
            }
            catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
            {
                throw new ArgumentException("'video' is not a valid base64 data URL (data:video/mp4;base64,...).", e);
            }

            return data.HasTopLevelMediaType("video") || data.HasTopLevelMediaType("image")
                ? data
                : throw new ArgumentException($"'video' has the media type '{data.MediaType}'; allowed: video/* or image/*.");
        }

        return await _media.ReadAsync(video, "video", video: true, cancellationToken).ConfigureAwait(false);
    }
}
