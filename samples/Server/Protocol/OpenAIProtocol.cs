using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace VidKV.AI.Server;

/// <summary>OpenAI's chat completions responses, written with System.Text.Json nodes: completions, stream chunks, models, errors.</summary>
public static class OpenAIProtocol
{
    /// <summary>A non-streamed response.</summary>
    public static JsonObject Completion(string id, long created, string model, ChatResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return new()
        {
            ["id"] = id,
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = response.Text, ["refusal"] = null },
                ["logprobs"] = null,
                ["finish_reason"] = Finish(response.FinishReason),
            }),
            ["usage"] = Usage(response.Usage),
        };
    }

    /// <summary>
    /// One chunk of a streamed response with one choice. With <paramref name="includeUsage"/> every such chunk carries
    /// <c>"usage": null</c>, as OpenAI's do; the usage itself comes in <see cref="UsageChunk"/>.
    /// </summary>
    public static JsonObject Chunk(string id, long created, string model, string? text, bool role, ChatFinishReason? finish, bool includeUsage)
    {
        var delta = new JsonObject();
        if (role)
        {
            delta["role"] = "assistant";
            delta["content"] = string.Empty;
        }
        else if (!string.IsNullOrEmpty(text))
        {
            delta["content"] = text;
        }

        var chunk = Envelope(id, created, model);
        chunk["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = Finish(finish) });
        if (includeUsage)
        {
            chunk["usage"] = null;
        }

        return chunk;
    }

    /// <summary>The last chunk when the client asked for <c>stream_options.include_usage</c>: <c>choices: []</c> and the usage.</summary>
    public static JsonObject UsageChunk(string id, long created, string model, UsageDetails? usage)
    {
        var chunk = Envelope(id, created, model);
        chunk["choices"] = new JsonArray();
        chunk["usage"] = Usage(usage);
        return chunk;
    }

    /// <summary>A model object, as <c>/v1/models</c> lists it.</summary>
    public static JsonObject Model(string id, long created) => new()
    {
        ["id"] = id,
        ["object"] = "model",
        ["created"] = created,
        ["owned_by"] = VidKV.AI.Connector.VidKVChatClient.ProviderName,
    };

    /// <summary>Writes one <c>data:</c> event and flushes it.</summary>
    public static async Task WriteEventAsync(HttpContext context, JsonObject data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        await context.Response.WriteAsync("data: " + data.ToJsonString() + "\n\n", cancellationToken).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes an error in OpenAI's shape, with its status (and <c>Retry-After</c> for 429 and 503).</summary>
    public static Task WriteErrorAsync(HttpContext context, ApiError error)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(error);
        context.Response.StatusCode = error.Status;
        if (error.Status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = "5";
        }

        if (error.Status == StatusCodes.Status401Unauthorized)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        return context.Response.WriteAsJsonAsync(error.ToJson(), CancellationToken.None);
    }

    private static JsonObject Envelope(string id, long created, string model) => new()
    {
        ["id"] = id,
        ["object"] = "chat.completion.chunk",
        ["created"] = created,
        ["model"] = model,
    };

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
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = usage.CachedInputTokenCount ?? 0 },
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
}
