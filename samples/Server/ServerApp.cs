using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Polly.Timeout;
using VidKV.AI.Connector;

namespace VidKV.AI.Server;

/// <summary>
/// The server: <c>/v1/chat/completions</c> (JSON and SSE), <c>/v1/models</c>, <c>/v1/models/{id}</c> and
/// <c>/healthz</c>, over the connector's <see cref="VidKVChatClient"/>. Every error is in OpenAI's shape.
/// </summary>
public static partial class ServerApp
{
    /// <summary>Builds the application; <paramref name="configure"/> may change the builder (tests set the model and the port).</summary>
    /// <exception cref="ArgumentException">A <c>Server</c> setting is invalid (the message names it).</exception>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        var options = builder.Configuration.GetSection(ServerOptions.SectionName).Get<ServerOptions>() ?? new ServerOptions();
        options.Validate();
        if (builder.Configuration["Server:AllowFilePaths"] is not null)
        {
            throw new ArgumentException("Server:AllowFilePaths is gone: file paths are read only under the folders listed in Server:MediaRoots (none by default). Remove the setting, and list media folders there if clients should name files.");
        }

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        builder.Services.AddVidKVChatClient(builder.Configuration.GetSection("VidKV"));
        builder.Services.AddSingleton(services =>
        {
            var model = services.GetRequiredService<IOptions<VidKVChatClientOptions>>().Value;
            return new MediaRoots(options.MediaRoots, model.MaxMediaBytes, options.MediaReadTimeout);
        });
        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("VidKV.AI.Server");
        long started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        _ = app.Services.GetRequiredService<MediaRoots>(); // a bad root fails at start-up, not on the first request

        app.UseServerGuards(options);

        app.MapGet("/healthz", (VidKVChatClient client) => Results.Json(new JsonObject
        {
            ["status"] = "ok",
            ["model"] = client.ModelId,
            ["queued"] = client.QueuedRequests,
        }));

        app.MapGet("/v1/models", (VidKVChatClient client) => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(OpenAIProtocol.Model(client.ModelId, started)),
        }));

        app.MapGet("/v1/models/{**id}", async (HttpContext context, string id, VidKVChatClient client) =>
        {
            if (!string.Equals(id, client.ModelId, StringComparison.OrdinalIgnoreCase))
            {
                await OpenAIProtocol.WriteErrorAsync(context, new ApiError(404, $"The model '{id}' does not exist; this server serves '{client.ModelId}'.", "invalid_request_error", "model", "model_not_found")).ConfigureAwait(false);
                return;
            }

            await context.Response.WriteAsJsonAsync(OpenAIProtocol.Model(client.ModelId, started)).ConfigureAwait(false);
        });

        app.MapPost("/v1/chat/completions", async (HttpContext context, IChatClient chat, VidKVChatClient model, MediaRoots media, IOptions<VidKVChatClientOptions> settings) =>
        {
            CompletionRequest request;
            try
            {
                JsonNode? body;
                try
                {
                    body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
                }
                catch (JsonException e)
                {
                    throw ApiError.Invalid($"We could not parse the JSON body of your request: {e.Message}", code: "invalid_json");
                }

                request = await CompletionRequestParser.ParseAsync(body, model.ModelId, settings.Value.MaxFrames, media, context.RequestAborted).ConfigureAwait(false);
            }
            catch (ApiError e)
            {
                Log.ClientError(logger, e.Status, e.Code, e.Message);
                await OpenAIProtocol.WriteErrorAsync(context, e).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            await CompleteAsync(context, chat, model.ModelId, request, logger).ConfigureAwait(false);
        });

        return app;
    }

    private static async Task CompleteAsync(HttpContext context, IChatClient chat, string modelId, CompletionRequest request, ILogger logger)
    {
        // The request's token is HttpContext.RequestAborted: a client that disconnects cancels its generation.
        var cancellationToken = context.RequestAborted;
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        bool started = false;
        try
        {
            if (!request.Stream)
            {
                var response = await chat.GetResponseAsync(request.Messages, request.Options, cancellationToken).ConfigureAwait(false);
                await context.Response.WriteAsJsonAsync(OpenAIProtocol.Completion(id, created, modelId, response), cancellationToken).ConfigureAwait(false);
                return;
            }

            UsageDetails? usage = null;
            await foreach (var update in chat.GetStreamingResponseAsync(request.Messages, request.Options, cancellationToken).ConfigureAwait(false))
            {
                if (!started)
                {
                    started = true;
                    context.Response.ContentType = "text/event-stream";
                    context.Response.Headers.CacheControl = "no-cache";
                    await OpenAIProtocol.WriteEventAsync(context, OpenAIProtocol.Chunk(id, created, modelId, null, role: true, null, request.IncludeUsage), cancellationToken).ConfigureAwait(false);
                }

                usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
                if (update.Text.Length > 0 || update.FinishReason is not null)
                {
                    await OpenAIProtocol.WriteEventAsync(context, OpenAIProtocol.Chunk(id, created, modelId, update.Text, role: false, update.FinishReason, request.IncludeUsage), cancellationToken).ConfigureAwait(false);
                }
            }

            if (request.IncludeUsage)
            {
                await OpenAIProtocol.WriteEventAsync(context, OpenAIProtocol.UsageChunk(id, created, modelId, usage), cancellationToken).ConfigureAwait(false);
            }

            await context.Response.WriteAsync("data: [DONE]\n\n", cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; generation has stopped and its cache is freed.
        }
        catch (Exception e)
        {
            var error = ToApiError(e, request);
            if (error.Status >= 500 && error.Code is null)
            {
                Log.ServerError(logger, e);
            }
            else
            {
                Log.ClientError(logger, error.Status, error.Code, error.Message);
            }

            if (!started)
            {
                await OpenAIProtocol.WriteErrorAsync(context, error).ConfigureAwait(false);
            }
            else
            {
                // Headers are sent: report the error in the stream, as OpenAI does.
                await OpenAIProtocol.WriteEventAsync(context, error.ToJson(), CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private static ApiError ToApiError(Exception e, CompletionRequest request) => e switch
    {
        ApiError api => api,
        ModelBusyException { Reason: ModelBusyReason.QueueFull } => new ApiError(
            StatusCodes.Status429TooManyRequests, ErrorText.ForClient(e.Message, request.MaxTokensName), "requests", null, "rate_limit_exceeded"),
        ModelBusyException or TimeoutRejectedException => new ApiError(
            StatusCodes.Status503ServiceUnavailable, ErrorText.ForClient(e.Message, request.MaxTokensName), "server_error", null, "server_overloaded"),
        ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException or FormatException => ApiError.Invalid(
            ErrorText.ForClient(e.Message, request.MaxTokensName), null, e is InvalidDataException ? "invalid_media" : "invalid_value"),
        _ => new ApiError(StatusCodes.Status500InternalServerError, "The server had an error while processing your request.", "server_error"),
    };

    private static partial class Log
    {
        [LoggerMessage(10, LogLevel.Warning, "Client error {Status} {Code}: {Message}")]
        public static partial void ClientError(ILogger logger, int status, string? code, string message);

        [LoggerMessage(11, LogLevel.Error, "The server failed a request.")]
        public static partial void ServerError(ILogger logger, Exception exception);
    }
}
