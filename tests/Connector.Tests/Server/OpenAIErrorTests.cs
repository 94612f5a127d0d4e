using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>OpenAI's error shape on every refusal, parameters the server does not implement, OpenAI's ranges, models.</summary>
public sealed class OpenAIErrorTests : IAsyncLifetime
{
    private const string Hi = """[{"role":"user","content":"hi"}]""";
    private ServerHost _host = null!;

    public async Task InitializeAsync() => _host = await ServerHost.StartAsync(new Dictionary<string, string?> { ["Server:MaxRequestBodyBytes"] = "65536" });

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<(HttpStatusCode Status, JsonObject Error, HttpResponseMessage Response)> SendAsync(HttpRequestMessage request)
    {
        var response = await _host.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonNode.Parse(text)!["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(p => p.Key));
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]), text);
        return (response.StatusCode, error, response);
    }

    private Task<(HttpStatusCode Status, JsonObject Error, HttpResponseMessage Response)> PostAsync(string json) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") });

    [Theory]
    [InlineData("\"n\":2", "n", "unsupported_value")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\"", "tool_choice", "unsupported_value")]
    [InlineData("\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "tool_choice", "unsupported_value")]
    [InlineData("\"response_format\":{\"type\":\"json_object\"}", "response_format.type", "unsupported_value")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{}}}", "response_format.type", "unsupported_value")]
    [InlineData("\"logprobs\":true", "logprobs", "unsupported_value")]
    [InlineData("\"top_logprobs\":3", "top_logprobs", "unsupported_value")]
    [InlineData("\"presence_penalty\":0.5", "presence_penalty", "unsupported_value")]
    [InlineData("\"frequency_penalty\":-1", "frequency_penalty", "unsupported_value")]
    [InlineData("\"logit_bias\":{\"50256\":-100}", "logit_bias", "unsupported_parameter")]
    [InlineData("\"modalities\":[\"text\",\"audio\"]", "modalities[1]", "unsupported_value")]
    [InlineData("\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}", "audio", "unsupported_parameter")]
    [InlineData("\"reasoning_effort\":\"low\"", "reasoning_effort", "unsupported_parameter")]
    [InlineData("\"stream_options\":{\"include_usage\":true}", "stream_options", "invalid_value")]
    [InlineData("\"temperature\":5", "temperature", "decimal_above_max_value")]
    [InlineData("\"top_p\":1.5", "top_p", "decimal_above_max_value")]
    [InlineData("\"presence_penalty\":3", "presence_penalty", "decimal_above_max_value")]
    [InlineData("\"n\":0", "n", "integer_below_min_value")]
    [InlineData("\"max_tokens\":0", "max_tokens", "integer_below_min_value")]
    [InlineData("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop", "array_above_max_length")]
    [InlineData("\"stop\":[null]", "stop[0]", "invalid_type")]
    [InlineData("\"stop\":5", "stop", "invalid_type")]
    [InlineData("\"temperature\":\"hot\"", "temperature", "invalid_type")]
    [InlineData("\"stream\":\"yes\"", "stream", "invalid_type")]
    [InlineData("\"model\":5", "model", "invalid_type")]
    [InlineData("\"frame_count\":0", "frame_count", "integer_below_min_value")]
    [InlineData("\"fps\":0", "fps", "invalid_value")]
    [InlineData("\"start_seconds\":4,\"end_seconds\":2", "end_seconds", "invalid_value")]
    [InlineData("\"colour\":\"red\"", "colour", "unknown_parameter")]
    public async Task ChatCompletions_UnsupportedOrOutOfRange_Gets400NamingTheField(string field, string param, string code)
    {
        var (status, error, _) = await PostAsync($$"""{"messages":{{Hi}},{{field}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal(code, (string?)error["code"]);
        Assert.Contains(param.Split('[', '.')[0], (string?)error["message"]);
    }

    [Theory]
    [InlineData("""[{"role":"tool","tool_call_id":"1","content":"42"}]""", "messages[0].role")]
    [InlineData("""[{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}]""", "messages[0].tool_calls")]
    [InlineData("""[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]""", "messages[0].content[0].file.file_id")]
    [InlineData("""[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}}]}]""", "messages[0].content[0].file.file_data")]
    [InlineData("""[{"role":"user","content":[{"type":"file","file":{"file_data":"AAAA"}}]}]""", "messages[0].content[0].file.file_data")]
    [InlineData("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]""", "messages[0].content[0].image_url.url")]
    [InlineData("""[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,@@@"}}]}]""", "messages[0].content[0].video_url.url")]
    [InlineData("""[{"role":"user","content":[{"type":"text"}]}]""", "messages[0].content[0].text")]
    [InlineData("""[{"role":"user","content":5}]""", "messages[0].content")]
    [InlineData("""[5]""", "messages[0]")]
    public async Task ChatCompletions_BadMessages_Get400NamingThePart(string messages, string param)
    {
        var (status, error, _) = await PostAsync($$"""{"messages":{{messages}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Contains(param, (string?)error["message"]);
    }

    [Theory]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"auto\"")]
    [InlineData("\"n\":1,\"logprobs\":false,\"top_logprobs\":0,\"presence_penalty\":0,\"response_format\":{\"type\":\"text\"},\"user\":\"u\",\"store\":false,\"metadata\":{\"a\":\"b\"}")]
    [InlineData("\"temperature\":2,\"top_p\":0,\"seed\":7,\"stop\":[\"zzz\"],\"max_completion_tokens\":3")]
    public async Task ChatCompletions_ParametersThatChangeNothingHere_AreAnswered(string fields)
    {
        using var response = await _host.Http.PostAsync("/v1/chat/completions", new StringContent($$"""{"messages":{{Hi}},{{fields}}}""", Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(JsonNode.Parse(body)!["choices"]!.AsArray());
    }

    [Fact]
    public async Task UnknownRouteAndMethod_Get404And405InOpenAIShape()
    {
        var (missing, error, _) = await SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("{}", Encoding.UTF8, "application/json") });
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("Invalid URL (POST /v1/completions).", (string?)error["message"]);

        var (method, wrong, _) = await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/chat/completions"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, method);
        Assert.Equal("Invalid method for URL (GET /v1/chat/completions).", (string?)wrong["message"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task OversizedBody_Gets413Json_AndNoErrorLog(bool chunked)
    {
        string json = $$$"""{"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,{{{new string('A', 100_000)}}}"}}]}]}""";
        var content = new StringContent(json, Encoding.UTF8, "application/json");
        if (chunked)
        {
            // No Content-Length: Kestrel stops the body at the limit while the server reads it.
            content = new StringContent(json, Encoding.UTF8, "application/json");
            content.Headers.ContentLength = null;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = content };
        if (chunked)
        {
            request.Headers.TransferEncodingChunked = true;
        }

        var (status, error, _) = await SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("request_too_large", (string?)error["code"]);
        Assert.Contains("65,536", (string?)error["message"]);
        Assert.DoesNotContain(_host.Logs.Entries, e => e.Level >= LogLevel.Error || e.Exception is not null);
    }

    [Fact]
    public async Task NonJsonContentType_Gets415()
    {
        var (status, error, _) = await SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"messages":{{Hi}}}""", Encoding.UTF8, "text/plain"),
        });
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        Assert.Equal("unsupported_media_type", (string?)error["code"]);
        Assert.Contains("text/plain", (string?)error["message"]);
    }

    [Fact]
    public async Task Models_ListAndGetById_UnknownIdIsModelNotFound()
    {
        var list = JsonNode.Parse(await _host.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string?)list["object"]);
        var listed = list["data"]![0]!;
        Assert.Equal(_host.Model.ModelId, (string?)listed["id"]);

        var one = JsonNode.Parse(await _host.Http.GetStringAsync($"/v1/models/{_host.Model.ModelId}"))!;
        Assert.Equal(listed.ToJsonString(), one.ToJsonString());
        Assert.Equal("model", (string?)one["object"]);
        Assert.True((long?)one["created"] > 0);

        var (status, error, _) = await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/models/gpt-4o"));
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("model_not_found", (string?)error["code"]);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
    }

    [Fact]
    public async Task ClientErrors_AreLoggedAsWarnings_WithoutStackTraces()
    {
        var (status, _, _) = await PostAsync("""{"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,AAAAAAAAAAAAAAAAAAAA"}}]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        _ = await PostAsync("""{"messages":[],"temperature":9}""");
        Assert.NotEmpty(_host.Logs.Entries);
        Assert.All(_host.Logs.Entries, e =>
        {
            Assert.Equal(LogLevel.Warning, e.Level);
            Assert.Null(e.Exception);
            Assert.DoesNotContain("   at ", e.Message);
        });
    }

    [Fact]
    public async Task UndecodableVideo_ErrorNamesNoServerPathOrPointer()
    {
        // Bytes that look like nothing ffmpeg reads: the decoder's message is the server's business, its paths and pointers are not the client's.
        string junk = Convert.ToBase64String(Encoding.ASCII.GetBytes("root:*:20000:0:99999:7:::\n" + new string('x', 400)));
        var (status, error, _) = await PostAsync($$$"""{"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,{{{junk}}}"}},{"type":"text","text":"?"}]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        string message = (string?)error["message"] ?? string.Empty;
        Assert.DoesNotContain(Path.GetTempPath(), message);
        Assert.DoesNotMatch("0x[0-9a-fA-F]{6,}", message);
        Assert.DoesNotContain("726F6F74", message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("root:", message);
    }
}
