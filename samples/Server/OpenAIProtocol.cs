using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using VidKV.AI.Connector;

namespace VidKV.AI.Server;

/// <summary>A parsed <c>/v1/chat/completions</c> request.</summary>
/// <param name="Messages">The conversation.</param>
/// <param name="Options">Sampling, length and VidKV settings.</param>
/// <param name="Stream">Whether to answer with server-sent events.</param>
public sealed record CompletionRequest(IReadOnlyList<ChatMessage> Messages, ChatOptions Options, bool Stream);

/// <summary>The request named a model this server does not serve.</summary>
public sealed class ModelNotFoundException(string message) : Exception(message);

/// <summary>
/// OpenAI's chat completions wire format, read and written with System.Text.Json nodes. Content parts: <c>text</c>,
/// <c>image_url</c> and <c>video_url</c> (a data URL, or a <c>file://</c> URL or absolute path when file paths are
/// allowed), and <c>video_file</c> / <c>image_file</c> with a <c>path</c>. VidKV extras are top-level fields:
/// <c>frame_count</c>, <c>fps</c>, <c>start_seconds</c>, <c>end_seconds</c>, <c>cache_preset</c>, <c>top_k</c>.
/// </summary>
public static class OpenAIProtocol
{
    /// <summary>Parses a request body.</summary>
    /// <exception cref="ArgumentException">The body is not a valid request; the message says which field.</exception>
    /// <exception cref="ModelNotFoundException">The model is not <paramref name="modelId"/>.</exception>
    public static CompletionRequest Parse(JsonNode? body, string modelId, bool allowFiles)
    {
        if (body is not JsonObject root)
        {
            throw new ArgumentException("The body must be a JSON object with 'model' and 'messages'.");
        }

        string? model = Str(root, "model");
        if (!string.IsNullOrEmpty(model) && !string.Equals(model, modelId, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelNotFoundException($"The model '{model}' does not exist here; this server serves '{modelId}'.");
        }

        if (root["messages"] is not JsonArray messages || messages.Count == 0)
        {
            throw new ArgumentException("'messages' must be a non-empty array.");
        }

        var parsed = new List<ChatMessage>();
        for (int i = 0; i < messages.Count; i++)
        {
            parsed.Add(Message(messages[i] as JsonObject ?? throw new ArgumentException($"messages[{i}] must be an object."), i, allowFiles));
        }

        var options = new ChatOptions
        {
            MaxOutputTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens"),
            Temperature = Float(root, "temperature"),
            TopP = Float(root, "top_p"),
            TopK = Int(root, "top_k"),
            Seed = root["seed"] is JsonValue seed ? seed.GetValue<long>() : null,
            StopSequences = root["stop"] switch
            {
                null => null,
                JsonValue v => [v.GetValue<string>()],
                JsonArray a => a.Select(s => s!.GetValue<string>()).ToList(),
                _ => throw new ArgumentException("'stop' must be a string or an array of strings."),
            },
        };
        if (Int(root, "frame_count") is { } frames)
        {
            options.WithFrameCount(frames);
        }

        if (Float(root, "fps") is { } fps)
        {
            options.WithFramesPerSecond(fps);
        }

        if (Float(root, "start_seconds") is not null || Float(root, "end_seconds") is not null)
        {
            options.WithTimeRange(Float(root, "start_seconds") is { } s ? TimeSpan.FromSeconds(s) : null, Float(root, "end_seconds") is { } e ? TimeSpan.FromSeconds(e) : null);
        }

        if (Str(root, "cache_preset") is { } preset)
        {
            options.WithCachePreset(preset);
        }

        return new CompletionRequest(parsed, options, root["stream"] is JsonValue stream && stream.GetValue<bool>());
    }

    /// <summary>A non-streamed response.</summary>
    public static JsonObject Completion(string id, long created, string model, ChatResponse response) => new()
    {
        ["id"] = id,
        ["object"] = "chat.completion",
        ["created"] = created,
        ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = response.Text },
            ["finish_reason"] = Finish(response.FinishReason),
        }),
        ["usage"] = Usage(response.Usage),
    };

    /// <summary>One server-sent event of a streamed response.</summary>
    public static JsonObject Chunk(string id, long created, string model, string? text, bool role, ChatFinishReason? finish, UsageDetails? usage)
    {
        var delta = new JsonObject();
        if (role)
        {
            delta["role"] = "assistant";
        }

        if (!string.IsNullOrEmpty(text))
        {
            delta["content"] = text;
        }

        var chunk = new JsonObject
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = created,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = Finish(finish) }),
        };
        if (usage is not null)
        {
            chunk["usage"] = Usage(usage);
        }

        return chunk;
    }

    /// <summary>Writes one <c>data:</c> event and flushes it.</summary>
    public static async Task WriteEventAsync(HttpContext context, JsonObject data, CancellationToken cancellationToken)
    {
        await context.Response.WriteAsync("data: " + data.ToJsonString() + "\n\n", cancellationToken);
        await context.Response.Body.FlushAsync(cancellationToken);
    }

    /// <summary>Writes an OpenAI-style error body.</summary>
    public static Task WriteErrorAsync(HttpContext context, int status, string message, string type)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new JsonObject { ["error"] = new JsonObject { ["message"] = message, ["type"] = type } });
    }

    private static JsonNode? Finish(ChatFinishReason? reason) =>
        reason is null ? null : reason == ChatFinishReason.Length ? "length" : "stop";

    private static JsonObject? Usage(UsageDetails? usage)
    {
        if (usage is null)
        {
            return null;
        }

        var result = new JsonObject
        {
            ["prompt_tokens"] = usage.InputTokenCount,
            ["completion_tokens"] = usage.OutputTokenCount,
            ["total_tokens"] = usage.TotalTokenCount,
        };
        if (usage.AdditionalCounts is { } counts)
        {
            var extra = new JsonObject();
            foreach (var (key, value) in counts)
            {
                extra[key.Replace("vidkv.", string.Empty, StringComparison.Ordinal)] = value;
            }

            result["vidkv"] = extra;
        }

        return result;
    }

    private static ChatMessage Message(JsonObject message, int index, bool allowFiles)
    {
        var role = Str(message, "role") switch
        {
            "system" or "developer" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            var other => throw new ArgumentException($"messages[{index}].role is '{other}'; allowed: system, developer, user, assistant."),
        };
        var contents = new List<AIContent>();
        switch (message["content"])
        {
            case JsonValue text:
                contents.Add(new TextContent(text.GetValue<string>()));
                break;
            case JsonArray parts:
                for (int j = 0; j < parts.Count; j++)
                {
                    contents.Add(Part(parts[j] as JsonObject ?? throw new ArgumentException($"messages[{index}].content[{j}] must be an object."), $"messages[{index}].content[{j}]", allowFiles));
                }

                break;
            case null:
                break;
            default:
                throw new ArgumentException($"messages[{index}].content must be a string or an array of parts.");
        }

        return new ChatMessage(role, contents);
    }

    private static AIContent Part(JsonObject part, string where, bool allowFiles)
    {
        string type = Str(part, "type") ?? throw new ArgumentException($"{where}.type is missing.");
        switch (type)
        {
            case "text":
                return new TextContent(Str(part, "text") ?? string.Empty);
            case "image_url" or "video_url":
                string url = (part[type] is JsonObject o ? Str(o, "url") : Str(part, type)) ?? throw new ArgumentException($"{where}.{type}.url is missing.");
                return Media(url, type.StartsWith("video", StringComparison.Ordinal), where, allowFiles);
            case "image_file" or "video_file":
                string path = (part[type] is JsonObject f ? Str(f, "path") : Str(part, "path")) ?? throw new ArgumentException($"{where}.{type}.path is missing.");
                return Media(path, type.StartsWith("video", StringComparison.Ordinal), where, allowFiles);
            default:
                throw new NotSupportedException($"{where}.type is '{type}'; allowed: text, image_url, video_url, image_file, video_file.");
        }
    }

    private static AIContent Media(string url, bool video, string where, bool allowFiles)
    {
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var data = new DataContent(url);
            if (video && data.HasTopLevelMediaType("image") && data.MediaType.Equals("image/gif", StringComparison.OrdinalIgnoreCase))
            {
                return new DataContent(data.Data, "video/gif");
            }

            return data;
        }

        bool isFile = url.StartsWith("file:", StringComparison.OrdinalIgnoreCase) || Path.IsPathFullyQualified(url);
        if (!isFile)
        {
            throw new NotSupportedException($"{where}: '{url}' is neither a data URL nor a file path; send the video as data:video/mp4;base64,... or a path on this server.");
        }

        if (!allowFiles)
        {
            throw new NotSupportedException($"{where}: file paths are turned off on this server (Server:AllowFilePaths); send the video as a data URL.");
        }

        string path = url.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? new Uri(url).LocalPath : url;
        string mediaType = VidKVMedia.MediaTypeOf(path);
        if (video && mediaType.StartsWith("image/", StringComparison.Ordinal))
        {
            mediaType = "video/" + mediaType["image/".Length..];
        }

        return VidKVMedia.FromFile(path, mediaType);
    }

    private static string? Str(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static int? Int(JsonObject o, string name) => o[name] is JsonValue v ? (v.TryGetValue(out int i) ? i : throw new ArgumentException($"'{name}' must be an integer; got {v.ToJsonString()}.")) : null;

    private static float? Float(JsonObject o, string name) =>
        o[name] is JsonValue v ? (v.TryGetValue(out double d) ? (float)d : throw new ArgumentException($"'{name}' must be a number; got {v.ToJsonString()}.")) : null;
}
