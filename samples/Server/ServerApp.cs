using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Polly.Timeout;
using VidKV.AI.Connector;

namespace VidKV.AI.Server;

/// <summary>The server: <c>/v1/chat/completions</c> (JSON and SSE), <c>/v1/models</c> and <c>/healthz</c>.</summary>
public static class ServerApp
{
    /// <summary>Builds the application; <paramref name="configure"/> may change the builder (tests set the model and the port).</summary>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.Services.AddVidKVChatClient(builder.Configuration.GetSection("VidKV")).UseLogging();
        var app = builder.Build();
        bool allowFiles = app.Configuration.GetValue("Server:AllowFilePaths", true);

        app.MapGet("/healthz", (VidKVChatClient client) => Results.Json(new JsonObject
        {
            ["status"] = "ok",
            ["model"] = client.ModelId,
            ["queued"] = client.QueuedRequests,
        }));

        app.MapGet("/v1/models", (VidKVChatClient client) => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonObject { ["id"] = client.ModelId, ["object"] = "model", ["owned_by"] = VidKVChatClient.ProviderName }),
        }));

        app.MapPost("/v1/chat/completions", async (HttpContext context, IChatClient chat, VidKVChatClient model) =>
        {
            CompletionRequest request;
            try
            {
                var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
                request = OpenAIProtocol.Parse(body, model.ModelId, allowFiles);
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or NotSupportedException or FileNotFoundException or InvalidOperationException or FormatException)
            {
                await OpenAIProtocol.WriteErrorAsync(context, StatusCodes.Status400BadRequest, e.Message, "invalid_request_error");
                return;
            }
            catch (ModelNotFoundException e)
            {
                await OpenAIProtocol.WriteErrorAsync(context, StatusCodes.Status404NotFound, e.Message, "model_not_found");
                return;
            }

            await Complete(context, chat, model.ModelId, request);
        });

        return app;
    }

    private static async Task Complete(HttpContext context, IChatClient chat, string modelId, CompletionRequest request)
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
                var response = await chat.GetResponseAsync(request.Messages, request.Options, cancellationToken);
                await context.Response.WriteAsJsonAsync(OpenAIProtocol.Completion(id, created, modelId, response), cancellationToken);
                return;
            }

            await foreach (var update in chat.GetStreamingResponseAsync(request.Messages, request.Options, cancellationToken))
            {
                if (!started)
                {
                    started = true;
                    context.Response.ContentType = "text/event-stream";
                    context.Response.Headers.CacheControl = "no-cache";
                    await OpenAIProtocol.WriteEventAsync(context, OpenAIProtocol.Chunk(id, created, modelId, null, role: true, null, null), cancellationToken);
                }

                var usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
                if (update.Text.Length > 0 || update.FinishReason is not null)
                {
                    await OpenAIProtocol.WriteEventAsync(context, OpenAIProtocol.Chunk(id, created, modelId, update.Text, role: false, update.FinishReason, usage), cancellationToken);
                }
            }

            await context.Response.WriteAsync("data: [DONE]\n\n", cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; generation has stopped and its cache is freed.
        }
        catch (Exception e) when (!started)
        {
            var (status, type) = e switch
            {
                ModelBusyException { Reason: ModelBusyReason.QueueFull } => (StatusCodes.Status429TooManyRequests, "rate_limit_exceeded"),
                ModelBusyException or TimeoutRejectedException => (StatusCodes.Status503ServiceUnavailable, "server_overloaded"),
                ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException => (StatusCodes.Status400BadRequest, "invalid_request_error"),
                _ => (StatusCodes.Status500InternalServerError, "server_error"),
            };
            if (status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
            {
                context.Response.Headers.RetryAfter = "5";
            }

            await OpenAIProtocol.WriteErrorAsync(context, status, e.Message, type);
        }
        catch (Exception e)
        {
            // Headers are sent: report the error in the stream, as OpenAI-compatible servers do.
            await OpenAIProtocol.WriteEventAsync(context, new JsonObject { ["error"] = new JsonObject { ["message"] = e.Message, ["type"] = "server_error" } }, CancellationToken.None);
        }
    }
}
