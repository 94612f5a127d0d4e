using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using VidKV.AI.Connector;
using static VidKV.AI.Server.JsonFields;

namespace VidKV.AI.Server;

/// <summary>
/// Reads OpenAI's chat completions request. Content parts: <c>text</c>; <c>image_url</c> and <c>video_url</c> (a data
/// URL, or a <c>file:</c> URL or absolute path under the media roots); <c>file</c> (<c>file.file_data</c> as a data
/// URL or bare base64, <c>file.filename</c> optional), as the OpenAI SDKs and Semantic Kernel send files; and
/// <c>video_file</c> / <c>image_file</c> with a <c>path</c>. VidKV extras are top-level fields: <c>frame_count</c>,
/// <c>fps</c>, <c>start_seconds</c>, <c>end_seconds</c>, <c>cache_preset</c>, <c>top_k</c>. Every parameter OpenAI
/// defines is either implemented, accepted because it changes nothing here (<c>user</c>, <c>store</c>, tools the model
/// is free not to call...), or refused with a 400 that names it: nothing is half-served.
/// </summary>
public static class CompletionRequestParser
{
    private const int MaxStopSequences = 4;
    private const long MaxTokens = 1_000_000;

    private static readonly HashSet<string> Ignored =
    [
        "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "parallel_tool_calls",
    ];

    private static readonly HashSet<string> Known =
    [
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "seed",
        "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "tools", "tool_choice", "functions", "function_call",
        "response_format", "modalities", "audio", "prediction", "reasoning_effort", "verbosity", "web_search_options",
        "top_k", "frame_count", "fps", "start_seconds", "end_seconds", "cache_preset",
        .. Ignored,
    ];

    /// <summary>Parses and validates a request body, reading the media it names.</summary>
    /// <param name="body">The parsed JSON body.</param>
    /// <param name="modelId">The model this server serves.</param>
    /// <param name="maxFrames">The most frames a request may ask for (<c>VidKV:MaxFrames</c>).</param>
    /// <param name="media">Which files may be read.</param>
    /// <param name="cancellationToken">Cancels file reads.</param>
    /// <exception cref="ApiError">The request is invalid or asks for something this server does not do; the error names the field.</exception>
    public static async Task<CompletionRequest> ParseAsync(JsonNode? body, string modelId, int maxFrames, MediaRoots media, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(media);
        if (body is not JsonObject root)
        {
            throw ApiError.Invalid("The request body must be a JSON object with 'model' and 'messages'.", code: "invalid_json");
        }

        foreach (var (key, _) in root)
        {
            if (!Known.Contains(key))
            {
                throw ApiError.Invalid($"Unrecognized request argument supplied: {key}", key, "unknown_parameter");
            }
        }

        string? model = Str(root, "model", "model");
        if (!string.IsNullOrEmpty(model) && !string.Equals(model, modelId, StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiError(StatusCodes.Status404NotFound, $"The model '{model}' does not exist; this server serves '{modelId}'.", "invalid_request_error", "model", "model_not_found");
        }

        Unsupported(root);
        bool stream = Bool(root, "stream", "stream") ?? false;
        bool includeUsage = false;
        if (Obj(root, "stream_options", "stream_options") is { } streamOptions)
        {
            if (!stream)
            {
                throw ApiError.Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value");
            }

            includeUsage = Bool(streamOptions, "include_usage", "stream_options.include_usage") ?? false;
        }

        var messages = Arr(root, "messages", "messages");
        if (messages is null || messages.Count == 0)
        {
            throw ApiError.Invalid("'messages' must be a non-empty array.", "messages", messages is null ? "missing_required_parameter" : "empty_array");
        }

        var parsed = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            string where = $"messages[{i}]";
            parsed.Add(await MessageAsync(messages[i] as JsonObject ?? throw WrongType(where, "an object", messages[i]), where, media, cancellationToken).ConfigureAwait(false));
        }

        string maxTokensName = root["max_completion_tokens"] is not null ? "max_completion_tokens" : "max_tokens";
        var options = new ChatOptions
        {
            MaxOutputTokens = (int?)IntIn(root, maxTokensName, 1, MaxTokens),
            Temperature = (float?)NumIn(root, "temperature", 0, 2),
            TopK = (int?)IntIn(root, "top_k", 0, int.MaxValue),
            Seed = Int(root, "seed", "seed"),
            StopSequences = Stop(root),
        };
        if (maxTokensName == "max_completion_tokens" && root["max_tokens"] is not null)
        {
            _ = IntIn(root, "max_tokens", 1, MaxTokens);
        }

        if (NumIn(root, "top_p", 0, 1) is { } topP)
        {
            // OpenAI allows top_p 0: only the most likely token, which is greedy decoding.
            if (topP == 0)
            {
                options.Temperature = 0;
            }
            else
            {
                options.TopP = (float)topP;
            }
        }

        if (IntIn(root, "frame_count", 1, maxFrames) is { } frames)
        {
            options.WithFrameCount((int)frames);
        }

        if (Num(root, "fps", "fps") is { } fps)
        {
            if (fps is <= 0 or > 240)
            {
                throw ApiError.Invalid($"Invalid 'fps': expected a number greater than 0 and at most 240, but got {fps} instead.", "fps", "invalid_value");
            }

            options.WithFramesPerSecond(fps);
        }

        double? start = NumIn(root, "start_seconds", 0, TimeSpan.MaxValue.TotalSeconds / 2);
        double? end = NumIn(root, "end_seconds", 0, TimeSpan.MaxValue.TotalSeconds / 2);
        if (start is { } s && end is { } e && e <= s)
        {
            throw ApiError.Invalid($"Invalid 'end_seconds': {e} is not after 'start_seconds' ({s}).", "end_seconds", "invalid_value");
        }

        if (start is not null || end is not null)
        {
            options.WithTimeRange(start is { } s2 ? TimeSpan.FromSeconds(s2) : null, end is { } e2 ? TimeSpan.FromSeconds(e2) : null);
        }

        if (Str(root, "cache_preset", "cache_preset") is { } preset)
        {
            if (string.IsNullOrWhiteSpace(preset))
            {
                throw ApiError.Invalid("Invalid 'cache_preset': empty; give a preset name such as 'vidkv-1.5/1.58' or leave it out.", "cache_preset", "invalid_value");
            }

            options.WithCachePreset(preset);
        }

        return new CompletionRequest(parsed, options, stream, includeUsage, maxTokensName);
    }

    /// <summary>Refuses, with a 400 naming the parameter, every parameter whose value asks for something this server does not do.</summary>
    private static void Unsupported(JsonObject root)
    {
        if (IntIn(root, "n", 1, 128) is > 1)
        {
            throw ApiError.UnsupportedValue("n", "must be 1: this server returns one choice per request.");
        }

        foreach (string penalty in new[] { "presence_penalty", "frequency_penalty" })
        {
            if (NumIn(root, penalty, -2, 2) is { } p && p != 0)
            {
                throw ApiError.UnsupportedValue(penalty, "must be 0: this server does not apply repetition penalties.");
            }
        }

        if (Obj(root, "logit_bias", "logit_bias") is { Count: > 0 })
        {
            throw ApiError.UnsupportedParameter("logit_bias", "is not supported by this server.");
        }

        if (Bool(root, "logprobs", "logprobs") == true)
        {
            throw ApiError.UnsupportedValue("logprobs", "must be false: this server does not return log probabilities.");
        }

        if (IntIn(root, "top_logprobs", 0, 20) is > 0)
        {
            throw ApiError.UnsupportedValue("top_logprobs", "must be 0: this server does not return log probabilities.");
        }

        // The model calls no tools. A request that lets it choose ('auto', 'none', or no choice) is answered without a
        // call, as a model that chose not to call would answer; a request that demands a call is refused.
        _ = Arr(root, "tools", "tools");
        _ = Arr(root, "functions", "functions");
        ToolChoice(root, "tool_choice");
        ToolChoice(root, "function_call");

        if (Obj(root, "response_format", "response_format") is { } format)
        {
            string type = Str(format, "type", "response_format.type") ?? "text";
            if (type != "text")
            {
                throw ApiError.UnsupportedValue("response_format.type", $"is '{type}'; this server answers in plain text only ('text').");
            }
        }

        if (Arr(root, "modalities", "modalities") is { } modalities)
        {
            for (int i = 0; i < modalities.Count; i++)
            {
                string? modality = modalities[i] is JsonValue v && v.TryGetValue(out string? m) ? m : throw WrongType($"modalities[{i}]", "a string", modalities[i]);
                if (modality != "text")
                {
                    throw ApiError.UnsupportedValue($"modalities[{i}]", $"is '{modality}'; this server answers with text only.");
                }
            }
        }

        foreach (string name in new[] { "audio", "prediction", "reasoning_effort", "verbosity", "web_search_options" })
        {
            if (root[name] is not null)
            {
                throw ApiError.UnsupportedParameter(name, "is not supported by this server's model.");
            }
        }
    }

    private static void ToolChoice(JsonObject root, string name)
    {
        switch (root[name])
        {
            case null:
                return;
            case JsonValue v when v.TryGetValue(out string? choice):
                if (choice is "auto" or "none")
                {
                    return;
                }

                throw choice == "required"
                    ? ApiError.UnsupportedValue(name, "is 'required'; this server's model does not call tools, so it cannot be required to.")
                    : ApiError.Invalid($"Invalid '{name}': '{choice}'; allowed: 'none', 'auto', 'required' or a named function.", name, "invalid_value");
            case JsonObject:
                throw ApiError.UnsupportedValue(name, "names a function to call; this server's model does not call tools.");
            case var other:
                throw WrongType(name, "a string or an object", other);
        }
    }

    private static List<string>? Stop(JsonObject root)
    {
        switch (root["stop"])
        {
            case null:
                return null;
            case JsonValue v when v.TryGetValue(out string? one):
                return one.Length == 0 ? throw ApiError.Invalid("Invalid 'stop': an empty string.", "stop", "invalid_value") : [one];
            case JsonArray a:
                if (a.Count > MaxStopSequences)
                {
                    throw ApiError.Invalid($"Invalid 'stop': array too long. Expected an array with maximum length {MaxStopSequences}, but got an array with length {a.Count} instead.", "stop", "array_above_max_length");
                }

                var list = new List<string>(a.Count);
                for (int i = 0; i < a.Count; i++)
                {
                    string s = a[i] is JsonValue item && item.TryGetValue(out string? text) ? text : throw WrongType($"stop[{i}]", "a string", a[i]);
                    list.Add(s.Length == 0 ? throw ApiError.Invalid($"Invalid 'stop[{i}]': an empty string.", $"stop[{i}]", "invalid_value") : s);
                }

                return list.Count == 0 ? null : list;
            case var other:
                throw WrongType("stop", "a string or an array of strings", other);
        }
    }

    private static async Task<ChatMessage> MessageAsync(JsonObject message, string where, MediaRoots media, CancellationToken cancellationToken)
    {
        string? roleName = Str(message, "role", where + ".role") ?? throw ApiError.Invalid($"Missing required parameter: '{where}.role'.", where + ".role", "missing_required_parameter");
        var role = roleName switch
        {
            "system" or "developer" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            "tool" or "function" => throw ApiError.UnsupportedValue(where + ".role", $"is '{roleName}'; this server's model does not call tools, so a conversation has no tool results."),
            _ => throw ApiError.Invalid($"Invalid value for '{where}.role': '{roleName}'; allowed: system, developer, user, assistant.", where + ".role", "invalid_value"),
        };
        if (Arr(message, "tool_calls", where + ".tool_calls") is { Count: > 0 } || message["function_call"] is not null)
        {
            throw ApiError.UnsupportedParameter(where + ".tool_calls", "is not supported: this server's model does not call tools.");
        }

        var contents = new List<AIContent>();
        switch (message["content"])
        {
            case null:
                break;
            case JsonValue text when text.TryGetValue(out string? s):
                contents.Add(new TextContent(s));
                break;
            case JsonArray parts:
                for (int j = 0; j < parts.Count; j++)
                {
                    string at = $"{where}.content[{j}]";
                    contents.Add(await PartAsync(parts[j] as JsonObject ?? throw WrongType(at, "an object", parts[j]), at, media, cancellationToken).ConfigureAwait(false));
                }

                break;
            case var other:
                throw WrongType(where + ".content", "a string or an array of content parts", other);
        }

        return new ChatMessage(role, contents);
    }

    private static async Task<AIContent> PartAsync(JsonObject part, string where, MediaRoots media, CancellationToken cancellationToken)
    {
        string type = Str(part, "type", where + ".type") ?? throw ApiError.Invalid($"Missing required parameter: '{where}.type'.", where + ".type", "missing_required_parameter");
        switch (type)
        {
            case "text":
                return new TextContent(Str(part, "text", where + ".text") ?? throw ApiError.Invalid($"Missing required parameter: '{where}.text'.", where + ".text", "missing_required_parameter"));
            case "refusal":
                return new TextContent(Str(part, "refusal", where + ".refusal") ?? string.Empty);
            case "image_url" or "video_url":
            {
                bool video = type == "video_url";
                string at = $"{where}.{type}";
                string url = (part[type] is JsonObject o ? Str(o, "url", at + ".url") : Str(part, type, at))
                    ?? throw ApiError.Invalid($"Missing required parameter: '{at}.url'.", at + ".url", "missing_required_parameter");
                return await MediaAsync(url, video, part[type] is JsonObject ? at + ".url" : at, media, cancellationToken).ConfigureAwait(false);
            }

            case "image_file" or "video_file":
            {
                string at = $"{where}.{type}.path";
                string path = (part[type] is JsonObject f ? Str(f, "path", at) : Str(part, "path", where + ".path"))
                    ?? throw ApiError.Invalid($"Missing required parameter: '{at}'.", at, "missing_required_parameter");
                return await media.ReadAsync(path, at, type == "video_file", cancellationToken).ConfigureAwait(false);
            }

            case "file":
                return FilePart(Obj(part, "file", where + ".file") ?? throw ApiError.Invalid($"Missing required parameter: '{where}.file'.", where + ".file", "missing_required_parameter"), where + ".file");
            default:
                throw ApiError.Invalid(
                    $"Invalid value for '{where}.type': '{type}'; allowed: text, image_url, video_url, file, image_file, video_file (this server reads text, videos and images).",
                    where + ".type",
                    "invalid_value");
        }
    }

    /// <summary>
    /// OpenAI's <c>file</c> part: <c>file_data</c> is a data URL (<c>data:video/mp4;base64,...</c>) or bare base64, and
    /// <c>filename</c> is optional; the type comes from the data URL, else from the file name's extension.
    /// </summary>
    private static DataContent FilePart(JsonObject file, string where)
    {
        if (file["file_id"] is not null)
        {
            throw ApiError.UnsupportedParameter(where + ".file_id", "is not supported: this server has no Files API; send the file's bytes in file.file_data as a data URL.");
        }

        string? name = Str(file, "filename", where + ".filename");
        string data = Str(file, "file_data", where + ".file_data")
            ?? throw ApiError.Invalid($"Missing required parameter: '{where}.file_data' (the file as a data URL, e.g. data:video/mp4;base64,...).", where + ".file_data", "missing_required_parameter");
        string? fromName = null;
        if (!string.IsNullOrEmpty(name))
        {
            try
            {
                fromName = VidKVMedia.MediaTypeOf(name);
            }
            catch (NotSupportedException)
            {
            }
        }

        DataContent content;
        if (data.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            content = DataUrl(data, where + ".file_data");
            if (fromName is not null && !content.HasTopLevelMediaType("video") && !content.HasTopLevelMediaType("image"))
            {
                content = new DataContent(content.Data, fromName); // e.g. application/octet-stream with a .mp4 name
            }
        }
        else
        {
            if (fromName is null)
            {
                throw ApiError.Invalid($"'{where}.file_data' is not a data URL, and '{where}.filename' names no known video or image type; send file_data as data:video/mp4;base64,...", where + ".file_data", "invalid_value");
            }

            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(data);
            }
            catch (FormatException)
            {
                throw ApiError.Invalid($"'{where}.file_data' is neither a data URL nor valid base64.", where + ".file_data", "invalid_value");
            }

            content = new DataContent(bytes, fromName);
        }

        CheckMediaType(content, where + ".file_data");
        content.Name = name;
        return content;
    }

    private static async Task<AIContent> MediaAsync(string url, bool video, string where, MediaRoots media, CancellationToken cancellationToken)
    {
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var data = DataUrl(url, where);
            CheckMediaType(data, where);
            return video && data.MediaType.Equals("image/gif", StringComparison.OrdinalIgnoreCase) ? new DataContent(data.Data, "video/gif") : data;
        }

        if (url.StartsWith("http:", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https:", StringComparison.OrdinalIgnoreCase))
        {
            throw ApiError.Invalid($"'{where}' is a web address; this server fetches nothing from the network. Send the media as a data URL (data:video/mp4;base64,...).", where, "invalid_url");
        }

        if (url.StartsWith("file:", StringComparison.OrdinalIgnoreCase) || Path.IsPathFullyQualified(url))
        {
            return await media.ReadAsync(url, where, video, cancellationToken).ConfigureAwait(false);
        }

        throw ApiError.Invalid($"'{where}' is neither a data URL nor a file path; send the media as data:video/mp4;base64,... (or a path under the server's media roots).", where, "invalid_url");
    }

    private static DataContent DataUrl(string url, string where)
    {
        try
        {
            return new DataContent(url);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
        {
            throw ApiError.Invalid($"'{where}' is not a valid base64 data URL (data:<media type>;base64,<data>).", where, "invalid_value");
        }
    }

    private static void CheckMediaType(DataContent content, string where)
    {
        if (!content.HasTopLevelMediaType("video") && !content.HasTopLevelMediaType("image"))
        {
            throw ApiError.Invalid($"'{where}' has the media type '{content.MediaType}'; this server reads video/* and image/* media (and text).", where, "unsupported_media_type");
        }

        if (content.Data.Length == 0)
        {
            throw ApiError.Invalid($"'{where}' is empty (0 bytes).", where, "invalid_value");
        }
    }
}
