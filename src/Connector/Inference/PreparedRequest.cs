using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using BackendRole = VidKV.AI.Backend.Text.ChatRole;
using MeaiRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Inference;

/// <summary>
/// A request checked and translated on the caller's thread (no tensors yet): the turns, the media to decode and the
/// generation, cache and sampling settings. The model decodes the media on its worker thread.
/// </summary>
internal sealed class PreparedRequest
{
    private PreparedRequest(IReadOnlyList<ChatTurn> turns, IReadOnlyList<MediaInput> media, GenerationOptions generation, KVCacheOptions cache, FrameSamplingOptions sampling)
    {
        Turns = turns;
        Media = media;
        Generation = generation;
        Cache = cache;
        Sampling = sampling;
    }

    public IReadOnlyList<ChatTurn> Turns { get; }

    public IReadOnlyList<MediaInput> Media { get; }

    public GenerationOptions Generation { get; }

    public KVCacheOptions Cache { get; }

    public FrameSamplingOptions Sampling { get; }

    /// <summary>The backend's media limits: its defaults, with <see cref="VidKVChatClientOptions.MaxMediaBytes"/> for files too.</summary>
    public MediaLimits Limits { get; private init; } = MediaLimits.Default;

    /// <summary>Checks and translates messages and options; never changes them.</summary>
    /// <exception cref="ArgumentException">An option or a message is invalid; the message names it.</exception>
    /// <exception cref="NotSupportedException">A content or role the model cannot read.</exception>
    /// <exception cref="FileNotFoundException">A media file does not exist.</exception>
    public static PreparedRequest Create(IEnumerable<ChatMessage> messages, ChatOptions? options, VidKVChatClientOptions settings, string modelId)
    {
        var generation = MapGeneration(options, settings, modelId);
        var cache = MapCache(options, settings);
        var sampling = MapSampling(options, settings);
        var turns = new List<ChatTurn>();
        var media = new List<MediaInput>();
        if (options?.Instructions is { Length: > 0 } instructions)
        {
            turns.Add(new ChatTurn(BackendRole.System, instructions));
        }

        int index = 0;
        foreach (var message in messages)
        {
            if (message is null)
            {
                throw new ArgumentException($"Message {index} is null.", nameof(messages));
            }

            turns.Add(MapMessage(message, index++, media, settings));
        }

        if (index == 0)
        {
            throw new ArgumentException("The request has no messages; give at least one user message.", nameof(messages));
        }

        return new PreparedRequest(turns, media, generation, cache, sampling) { Limits = MediaLimits.Default with { MaxBytes = settings.MaxMediaBytes } };
    }

    /// <summary>The backend's request: turns, media sources and frame sampling (the model decodes the media).</summary>
    public ChatRequest ToChatRequest() => new(Turns)
    {
        Videos = Media.Where(m => m.IsVideo).Select(m => m.Source).ToList(),
        Images = Media.Where(m => !m.IsVideo).Select(m => m.Source).ToList(),
        Sampling = Sampling,
        Limits = Limits,
    };

    private static ChatTurn MapMessage(ChatMessage message, int index, List<MediaInput> media, VidKVChatClientOptions settings)
    {
        BackendRole role = message.Role == MeaiRole.System ? BackendRole.System
            : message.Role == MeaiRole.User ? BackendRole.User
            : message.Role == MeaiRole.Assistant ? BackendRole.Assistant
            : throw new NotSupportedException($"Message {index} has role '{message.Role}'; the model reads system, user and assistant messages (it does not call tools).");
        var parts = new List<ChatPart>();
        for (int i = 0; i < message.Contents.Count; i++)
        {
            var content = message.Contents[i];
            string where = $"Content {i} of message {index}";
            switch (content)
            {
                case TextContent text:
                    parts.Add(new TextPart(text.Text ?? string.Empty));
                    break;
                case TextReasoningContent or UsageContent:
                    break; // earlier replies' metadata: nothing for the model to read
                case DataContent data:
                    parts.Add(AddMedia(media, data.MediaType, where, data.Name ?? $"{where} ({data.MediaType})", data.Data, null, settings, role));
                    break;
                case UriContent uri:
                    parts.Add(AddMedia(media, uri.MediaType, where, uri.Uri.ToString(), null, LocalPath(uri.Uri, where), settings, role));
                    break;
                default:
                    throw new NotSupportedException(
                        $"{where} is a {content.GetType().Name}; VidKVChatClient reads TextContent, and DataContent or UriContent with an image/* or video/* media type.");
            }
        }

        return new ChatTurn(role, parts);
    }

    private static ChatPart AddMedia(List<MediaInput> media, string mediaType, string where, string name, ReadOnlyMemory<byte>? bytes, string? path, VidKVChatClientOptions settings, BackendRole role)
    {
        bool video = mediaType.StartsWith("video/", StringComparison.OrdinalIgnoreCase);
        bool image = mediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase);
        if (!video && !image)
        {
            throw new NotSupportedException($"{where} has media type '{mediaType}'; VidKVChatClient reads image/* and video/* media (and text).");
        }

        if (role != BackendRole.User)
        {
            throw new NotSupportedException($"{where} is {(video ? "a video" : "an image")} in a {role.ToString().ToLowerInvariant()} message; media are read in user messages only.");
        }

        if (bytes is { } b)
        {
            if (b.Length == 0)
            {
                throw new ArgumentException($"{where} ('{name}') is empty (0 bytes): there is no {(video ? "video" : "image")} in it.");
            }

            if (b.Length > settings.MaxMediaBytes)
            {
                throw new ArgumentException($"{where} ('{name}') is {b.Length:N0} bytes; allowed: at most {settings.MaxMediaBytes:N0} (VidKVChatClientOptions.MaxMediaBytes).");
            }
        }

        media.Add(new MediaInput(video, path is not null ? MediaSource.FromFile(path) : MediaSource.FromBytes(bytes!.Value, name)));
        return video ? new VideoPart() : new ImagePart();
    }

    private static string LocalPath(Uri uri, string where)
    {
        if (!uri.IsAbsoluteUri || !uri.IsFile)
        {
            throw new NotSupportedException(
                $"{where} is the URI '{uri}'; VidKVChatClient reads local files (file: URIs) and data in the request (DataContent, data: URIs). Download remote media first.");
        }

        string path = uri.LocalPath;
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"{where} names '{path}', which does not exist.", path);
        }

        return path;
    }

    private static GenerationOptions MapGeneration(ChatOptions? options, VidKVChatClientOptions settings, string modelId)
    {
        if (options?.ModelId is { Length: > 0 } requested && !string.Equals(requested, modelId, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"ChatOptions.ModelId is '{requested}'; this client serves '{modelId}' only.");
        }

        if (options?.MaxOutputTokens is { } max && max is < 1 or > 1_000_000)
        {
            throw new ArgumentException($"ChatOptions.MaxOutputTokens is {max}; allowed: 1 to 1,000,000.");
        }

        var generation = new GenerationOptions
        {
            MaxNewTokens = options?.MaxOutputTokens ?? settings.MaxOutputTokens,
            Temperature = options?.Temperature ?? 0,
            TopP = options?.TopP ?? 1.0,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed,
            StopSequences = options?.StopSequences?.ToArray() ?? Array.Empty<string>(),
        };
        try
        {
            generation.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Invalid ChatOptions: {e.Message}", e);
        }

        return generation;
    }

    private static KVCacheOptions MapCache(ChatOptions? options, VidKVChatClientOptions settings)
    {
        string preset = options.GetCachePreset() ?? settings.CachePreset;
        try
        {
            return KVCacheOptions.FromPreset(preset, settings.CacheProfile);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{VidKVChatOptions.CachePresetKey}\"]: {e.Message}", e);
        }
    }

    private static FrameSamplingOptions MapSampling(ChatOptions? options, VidKVChatClientOptions settings)
    {
        int? count = options.GetFrameCount();
        double? fps = options.GetFramesPerSecond();
        if (count is { } c && (c < 1 || c > settings.MaxFrames))
        {
            throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{VidKVChatOptions.FrameCountKey}\"] is {c}; allowed: 1 to {settings.MaxFrames} (VidKVChatClientOptions.MaxFrames).");
        }

        var sampling = new FrameSamplingOptions
        {
            FrameCount = count ?? Math.Min(settings.FrameCount, settings.MaxFrames),
            FramesPerSecond = fps,
            MaxFrames = settings.MaxFrames,
            Start = options.GetStart(),
            End = options.GetEnd(),
        };
        try
        {
            sampling.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Invalid video sampling in ChatOptions.AdditionalProperties ({VidKVChatOptions.FrameCountKey}, {VidKVChatOptions.FramesPerSecondKey}, {VidKVChatOptions.StartSecondsKey}, {VidKVChatOptions.EndSecondsKey}): {e.Message}", e);
        }

        return sampling;
    }
}
