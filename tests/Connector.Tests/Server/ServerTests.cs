using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Server;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>The OpenAI-compatible server over real HTTP on loopback (Kestrel on a free port).</summary>
public sealed class ServerTests : IAsyncLifetime
{
    private ServerHost _host = null!;
    private HttpClient _http = null!;

    private VidKVChatClient Model => _host.Model;

    public async Task InitializeAsync()
    {
        // File paths only under the tests' temporary folder (paths are off by default: see ServerSafetyTests).
        _host = await ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:MediaRoots:0"] = TinyModel.TempFolder });
        _http = _host.Http;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private static string VideoDataUrl => "data:video/mp4;base64," + Convert.ToBase64String(TinyModel.VideoBytes);

    private static JsonObject Request(string videoUrl, bool stream, int maxTokens = 6) => new()
    {
        ["model"] = "vidkv-tiny-random",
        ["stream"] = stream,
        ["max_tokens"] = maxTokens,
        ["messages"] = new JsonArray(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(
                new JsonObject { ["type"] = "video_url", ["video_url"] = new JsonObject { ["url"] = videoUrl } },
                new JsonObject { ["type"] = "text", ["text"] = "What moves?" }),
        }),
    };

    [Fact]
    public async Task Healthz_AnswersOk_WithTheModel()
    {
        var health = await _http.GetFromJsonAsync<JsonObject>("/healthz");
        Assert.Equal("ok", (string?)health!["status"]);
        Assert.Equal("vidkv-tiny-random", (string?)health["model"]);
    }

    [Fact]
    public async Task ChatCompletions_Json_WithAVideoDataUrl_AnswersAsTheClientDoes()
    {
        using var response = await _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: false));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var json = JsonNode.Parse(body)!;

        var direct = await Model.GetResponseAsync([TinyModel.VideoQuestion("What moves?")], new ChatOptions { MaxOutputTokens = 6 });
        Assert.Equal("chat.completion", (string?)json["object"]);
        Assert.Equal(direct.Text, (string?)json["choices"]![0]!["message"]!["content"]);
        Assert.Equal(direct.FinishReason == ChatFinishReason.Length ? "length" : "stop", (string?)json["choices"]![0]!["finish_reason"]);
        Assert.Equal(direct.Usage!.InputTokenCount, (long?)json["usage"]!["prompt_tokens"]);
        Assert.Equal(4 * 16 + 1, (long?)json["usage"]!["vidkv"]!["video_tokens"]);
        Assert.True((long?)json["usage"]!["vidkv"]!["kv_bytes"] > 0);
    }

    [Fact]
    public async Task ChatCompletions_Sse_WithAFilePathUnderAMediaRoot_StreamsTheSameTextAsJson_UsageLastWithNoChoices()
    {
        var expected = JsonNode.Parse(await (await _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: false))).Content.ReadAsStringAsync())!;

        var request = Request(TinyModel.VideoPath, stream: true);
        request["stream_options"] = new JsonObject { ["include_usage"] = true };
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(request) };
        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim()).ToList();

        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.Single(chunks.Select(c => (string?)c["id"]).Distinct());
        Assert.Equal("assistant", (string?)chunks[0]["choices"]![0]!["delta"]!["role"]);

        // OpenAI's usage chunk: last, no choices; every other chunk has "usage": null.
        var usage = chunks[^1];
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal((long?)expected["usage"]!["completion_tokens"], (long?)usage["usage"]!["completion_tokens"]);
        Assert.Equal((long?)expected["usage"]!["prompt_tokens"], (long?)usage["usage"]!["prompt_tokens"]);
        var choices = chunks.SkipLast(1).ToList();
        Assert.All(choices, c => Assert.True(c.AsObject().TryGetPropertyValue("usage", out var u) && u is null));
        string text = string.Concat(choices.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? string.Empty));
        Assert.Equal((string?)expected["choices"]![0]!["message"]!["content"], text);
        Assert.Equal((string?)expected["choices"]![0]!["finish_reason"], (string?)choices[^1]["choices"]![0]!["finish_reason"]);
        Assert.All(choices.SkipLast(1), c => Assert.Null(c["choices"]![0]!["finish_reason"]));
    }

    [Theory]
    [InlineData(null)]
    [InlineData(false)]
    public async Task ChatCompletions_Sse_WithoutIncludeUsage_SendsNoUsage(bool? includeUsage)
    {
        var request = Request(VideoDataUrl, stream: true);
        if (includeUsage is { } include)
        {
            request["stream_options"] = new JsonObject { ["include_usage"] = include };
        }

        using var response = await _http.PostAsJsonAsync("/v1/chat/completions", request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chunks = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim()).Where(e => e != "data: [DONE]").Select(e => JsonNode.Parse(e["data: ".Length..])!.AsObject()).ToList();
        Assert.True(chunks.Count >= 2, body);
        Assert.All(chunks, c => Assert.False(c.ContainsKey("usage"), c.ToJsonString()));
        Assert.All(chunks, c => Assert.Single(c["choices"]!.AsArray()));
        Assert.NotNull((string?)chunks[^1]["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task ClientDisconnect_MidStream_CancelsTheGeneration()
    {
        // A long greedy reply to cut (the random model does not end it early): a few seconds, against the milliseconds
        // Kestrel takes to notice the disconnect.
        const int MaxTokens = 4000;
        var ended = new TaskCompletionSource<(int Tokens, bool Cancelled)>(TaskCreationOptions.RunContinuationsAsynchronously);
        Model.GenerationEnded = (tokens, cancelled) => ended.TrySetResult((tokens, cancelled));
        try
        {
            using (var message = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(Request(VideoDataUrl, stream: true, maxTokens: MaxTokens)) })
            using (var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead))
            {
                var stream = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[256];
                int read = await stream.ReadAsync(buffer);
                Assert.StartsWith("data: ", Encoding.UTF8.GetString(buffer, 0, read));
            }

            var (tokens, cancelled) = await ended.Task.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.True(cancelled, $"generation ran to its end ({tokens} tokens) after the client left");
            Assert.True(tokens < MaxTokens, $"{tokens} tokens");
        }
        finally
        {
            Model.GenerationEnded = null;
        }
    }

    [Fact]
    public async Task EightSimultaneousStreams_AreServedTogether_WithoutA429_EachAsAlone()
    {
        // The host's queue holds one waiting request; eight streams fit beside each other (MaxConcurrentSequences 8).
        var expected = JsonNode.Parse(await (await _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: false, maxTokens: 10))).Content.ReadAsStringAsync())!;
        string expectedText = (string?)expected["choices"]![0]!["message"]!["content"] ?? string.Empty;

        var streams = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            using var response = await _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: true, maxTokens: 10));
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        foreach (var (status, body) in streams)
        {
            Assert.True(status == HttpStatusCode.OK, $"{status}: {body}");
            var chunks = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim()).Where(e => e != "data: [DONE]").Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
            Assert.Equal(expectedText, string.Concat(chunks.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? string.Empty)));
        }
    }

    [Fact]
    public async Task Overload_FullQueueGives429_WaitPastTheLimitGives503()
    {
        using var gate = new ManualResetEventSlim();
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocker = Model.Worker.RunAsync(_ =>
        {
            holding.SetResult();
            return gate.Wait(TimeSpan.FromSeconds(30));
        });
        try
        {
            await holding.Task; // the model is busy
            var waiting = _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: false));
            for (int i = 0; i < 500 && Model.QueuedRequests == 0; i++)
            {
                await Task.Delay(10);
            }

            using var refused = await _http.PostAsJsonAsync("/v1/chat/completions", Request(VideoDataUrl, stream: true));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter is not null);
            var full = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Contains("MaxQueueLength", (string?)full["message"]);
            Assert.Equal("rate_limit_exceeded", (string?)full["code"]);

            using var timedOut = await waiting;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, timedOut.StatusCode);
            var late = JsonNode.Parse(await timedOut.Content.ReadAsStringAsync())!["error"]!;
            Assert.Contains("QueueTimeout", (string?)late["message"]);
            Assert.Equal("server_overloaded", (string?)late["code"]);
            Assert.Equal("server_error", (string?)late["type"]);
        }
        finally
        {
            gate.Set();
            await blocker;
        }
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", HttpStatusCode.NotFound, "serves 'vidkv-tiny-random'")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"stop":[null]}""", HttpStatusCode.BadRequest, "Invalid type for 'stop[0]': expected a string, but got null instead.")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":"5"}""", HttpStatusCode.BadRequest, "Invalid type for 'max_tokens': expected an integer, but got a string instead.")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}""", HttpStatusCode.BadRequest, "Invalid 'max_completion_tokens': integer below minimum value")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"text","text":5}]}]}""", HttpStatusCode.BadRequest, "Invalid type for 'messages[0].content[0].text': expected a string, but got a number instead.")]
    [InlineData("""{"messages":[]}""", HttpStatusCode.BadRequest, "'messages' must be a non-empty array")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}""", HttpStatusCode.BadRequest, "allowed: text, image_url, video_url, file")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:audio/wav;base64,AAAA"}}]}]}""", HttpStatusCode.BadRequest, "audio/wav")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"temperature":-2}""", HttpStatusCode.BadRequest, "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -2 instead.")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"stream":true,"cache_preset":"zip"}""", HttpStatusCode.BadRequest, "cache_preset")]
    [InlineData("not json", HttpStatusCode.BadRequest, "could not parse the JSON body")]
    public async Task BadRequests_GetAClearError(string body, HttpStatusCode status, string expected)
    {
        using var response = await _http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal(status, response.StatusCode);
        Assert.Contains(expected, text, StringComparison.OrdinalIgnoreCase);
        var error = JsonNode.Parse(text)!["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(p => p.Key));
    }
}
