#pragma warning disable OPENAI001, SKEXP0001 // CreateFilePart and BinaryContent are marked for evaluation (OpenAI 2.15, Semantic Kernel 1.82)
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using OpenAI;
using OpenAI.Chat;
using MeaiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using MeaiChatRole = Microsoft.Extensions.AI.ChatRole;
using MeaiTextContent = Microsoft.Extensions.AI.TextContent;
using OpenAIChatMessage = OpenAI.Chat.ChatMessage;
using SkBinaryContent = Microsoft.SemanticKernel.BinaryContent;
using SkTextContent = Microsoft.SemanticKernel.TextContent;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>
/// Real OpenAI clients against the server on real Kestrel, over the built-in model and a scene of its synthetic task:
/// a video sent as the client sends files is answered from the video (the reply is the one the model gives the video
/// directly, and not the one it gives the question alone).
/// </summary>
public sealed class OpenAIClientTests : IAsyncLifetime
{
    private const string ApiKey = "interop-test-key";
    private ServerHost _host = null!;
    private string _withVideo = null!;
    private string _textOnly = null!;

    private static SyntheticClip Clip => SyntheticClip.MotionScene;

    public async Task InitializeAsync()
    {
        _host = await ServerHost.StartAsync(
            new Dictionary<string, string?>
            {
                ["VidKV:FrameCount"] = Clip.Frames.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["VidKV:MaxOutputTokens"] = "12",
                ["VidKV:CachePreset"] = "fp16",
                ["Server:ApiKey"] = ApiKey,
            },
            builtIn: true);
        var options = new ChatOptions { MaxOutputTokens = 12 };
        _withVideo = (await _host.Model.GetResponseAsync([new MeaiChatMessage(MeaiChatRole.User, [new DataContent(Clip.Mp4, "video/mp4"), new MeaiTextContent(Clip.Question)])], options)).Text;
        _textOnly = (await _host.Model.GetResponseAsync([new MeaiChatMessage(MeaiChatRole.User, Clip.Question)], options)).Text;
        Assert.NotEqual(_withVideo, _textOnly); // the task: only the video tells the answer
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private ChatClient OpenAIChat(Action<string>? onRequest = null)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(_host.Address, "/v1") };
        if (onRequest is not null)
        {
            options.Transport = new HttpClientPipelineTransport(new HttpClient(new Recorder(onRequest)));
        }

        return new ChatClient(_host.Model.ModelId, new ApiKeyCredential(ApiKey), options);
    }

    [Fact]
    public async Task OpenAIDotNet_CreateFilePartVideo_IsAnsweredFromTheVideo()
    {
        string? sent = null;
        var chat = OpenAIChat(body => sent = body);
        var reply = (await chat.CompleteChatAsync(new UserChatMessage(
            ChatMessageContentPart.CreateFilePart(BinaryData.FromBytes(Clip.Mp4), "video/mp4", "scene.mp4"),
            ChatMessageContentPart.CreateTextPart(Clip.Question)))).Value;
        Assert.Contains("\"type\":\"file\"", sent);
        Assert.Contains("\"file_data\":\"data:video/mp4;base64,", sent);
        Assert.Equal(_withVideo, reply.Content[0].Text);

        var textOnly = (await chat.CompleteChatAsync(new UserChatMessage(Clip.Question))).Value;
        Assert.Equal(_textOnly, textOnly.Content[0].Text);
        Assert.NotEqual(textOnly.Content[0].Text, reply.Content[0].Text);

        // Streaming through the SDK (which asks for stream_options.include_usage): the usage arrives in the last chunk.
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(
            new UserChatMessage(ChatMessageContentPart.CreateFilePart(BinaryData.FromBytes(Clip.Mp4), "video/mp4", "scene.mp4"), ChatMessageContentPart.CreateTextPart(Clip.Question))))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            usage = update.Usage ?? usage;
        }

        Assert.Equal(_withVideo, text.ToString());
        Assert.True(usage!.InputTokenCount > 0);
    }

    [Theory]
    [InlineData(true, null)]          // a data URL, no filename (the Node SDK lets a client leave it out)
    [InlineData(false, "scene.mp4")]  // bare base64: the type comes from the filename
    public async Task FilePart_WithOrWithoutFilename_IsAnsweredFromTheVideo(bool dataUrl, string? filename)
    {
        var file = new JsonObject { ["file_data"] = dataUrl ? Clip.DataUrl : Convert.ToBase64String(Clip.Mp4) };
        if (filename is not null)
        {
            file["filename"] = filename;
        }

        var body = new JsonObject
        {
            ["model"] = _host.Model.ModelId,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "file", ["file"] = file }, new JsonObject { ["type"] = "text", ["text"] = Clip.Question }),
            }),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        using var response = await _host.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        Assert.Equal(_withVideo, (string?)JsonNode.Parse(text)!["choices"]![0]!["message"]!["content"]);
    }

    [Fact]
    public async Task OpenAIDotNet_SecondRequestAboutTheSameVideo_ReportsCachedPromptTokens()
    {
        await _host.Model.ForgetVideoAsync(new DataContent(Clip.Mp4, "video/mp4")); // InitializeAsync asked about it already
        var chat = OpenAIChat();
        UserChatMessage Ask(string question) => new(
            ChatMessageContentPart.CreateFilePart(BinaryData.FromBytes(Clip.Mp4), "video/mp4", "scene.mp4"),
            ChatMessageContentPart.CreateTextPart(question));

        var first = (await chat.CompleteChatAsync(Ask(Clip.Question))).Value;
        var second = (await chat.CompleteChatAsync(Ask("What color is the moving object?"))).Value;

        // usage.prompt_tokens_details.cached_tokens, as the OpenAI .NET client reads it: the video came from the memory.
        Assert.Equal(0, first.Usage.InputTokenDetails.CachedTokenCount);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount > 0, $"cached {second.Usage.InputTokenDetails.CachedTokenCount}");
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount < second.Usage.InputTokenCount);
        Assert.Equal(_withVideo, first.Content[0].Text);
    }

    [Fact]
    public async Task OpenAIDotNet_ErrorsInOpenAIShape()
    {
        var chat = OpenAIChat();
        var e = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 5 }));
        Assert.Equal(400, e.Status);
        Assert.Contains("temperature", e.Message);
        Assert.Contains("decimal_above_max_value", e.Message);

        var unauthorized = new ChatClient(_host.Model.ModelId, new ApiKeyCredential("wrong-key-123"), new OpenAIClientOptions { Endpoint = new Uri(_host.Address, "/v1") });
        var denied = await Assert.ThrowsAsync<ClientResultException>(() => unauthorized.CompleteChatAsync(new UserChatMessage("hi")));
        Assert.Equal(401, denied.Status);
    }

    [Fact]
    public async Task SemanticKernel_BinaryContentVideo_IsAnsweredFromTheVideo()
    {
        var kernel = Kernel.CreateBuilder()
            .AddOpenAIChatCompletion(_host.Model.ModelId, new Uri(_host.Address, "/v1"), ApiKey)
            .Build();
        var service = kernel.GetRequiredService<IChatCompletionService>();

        var history = new ChatHistory();
        history.AddUserMessage([new SkBinaryContent(Clip.Mp4, "video/mp4"), new SkTextContent(Clip.Question)]);
        var reply = await service.GetChatMessageContentAsync(history, kernel: kernel);
        Assert.Equal(_withVideo, reply.Content);

        var textOnly = new ChatHistory();
        textOnly.AddUserMessage(Clip.Question);
        var plain = await service.GetChatMessageContentAsync(textOnly, kernel: kernel);
        Assert.NotEqual(plain.Content, reply.Content);
    }

    [Fact]
    public async Task MicrosoftExtensionsAIOpenAI_DropsAVideoDataContent_RawFilePartWorks()
    {
        var bodies = new List<string>();
        IChatClient client = OpenAIChat(bodies.Add).AsIChatClient();

        // The adapter sends images, audio and PDFs; a video DataContent is left out before the request leaves the client.
        var dropped = await client.GetResponseAsync([new MeaiChatMessage(MeaiChatRole.User, [new DataContent(Clip.Mp4, "video/mp4"), new MeaiTextContent(Clip.Question)])]);
        Assert.DoesNotContain("base64", bodies[^1]);
        Assert.Equal(_textOnly, dropped.Text);

        // The working form: the OpenAI part itself as the content's RawRepresentation, which the adapter sends as is.
        var raw = new AIContent { RawRepresentation = ChatMessageContentPart.CreateFilePart(BinaryData.FromBytes(Clip.Mp4), "video/mp4", "scene.mp4") };
        var answered = await client.GetResponseAsync([new MeaiChatMessage(MeaiChatRole.User, [raw, new MeaiTextContent(Clip.Question)])]);
        Assert.Contains("\"type\":\"file\"", bodies[^1]);
        Assert.Equal(_withVideo, answered.Text);
    }

    [NodeFact]
    public async Task OpenAINode_FilePartVideo_IsAnsweredFromTheVideo()
    {
        string folder = NodeFactAttribute.PackageFolder.Value;
        string script = Path.Combine(folder, "ask.mjs");
        string clip = Path.Combine(folder, "scene.mp4");
        await File.WriteAllBytesAsync(clip, Clip.Mp4);
        await File.WriteAllTextAsync(script, """
            import OpenAI from 'openai';
            import { readFileSync } from 'node:fs';
            const [baseURL, apiKey, model, clip, question] = process.argv.slice(2);
            const client = new OpenAI({ baseURL, apiKey });
            const content = [{ type: 'text', text: question }];
            if (clip !== '-') {
              content.unshift({ type: 'file', file: { filename: 'scene.mp4', file_data: 'data:video/mp4;base64,' + readFileSync(clip).toString('base64') } });
            }
            const reply = await client.chat.completions.create({ model, messages: [{ role: 'user', content }] });
            process.stdout.write(JSON.stringify({ text: reply.choices[0].message.content }));
            try {
              await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], n: 2 });
            } catch (e) {
              process.stderr.write(JSON.stringify({ status: e.status, code: e.code, param: e.param }));
            }
            """);
        string baseUrl = new Uri(_host.Address, "/v1").ToString();
        var (video, errors) = NodeFactAttribute.Run("node", folder, script, baseUrl, ApiKey, _host.Model.ModelId, clip, Clip.Question);
        var (plain, _) = NodeFactAttribute.Run("node", folder, script, baseUrl, ApiKey, _host.Model.ModelId, "-", Clip.Question);
        Assert.Equal(_withVideo, (string?)JsonNode.Parse(video)!["text"]);
        Assert.Equal(_textOnly, (string?)JsonNode.Parse(plain)!["text"]);
        var error = JsonNode.Parse(errors)!;
        Assert.Equal(400, (int?)error["status"]);
        Assert.Equal("unsupported_value", (string?)error["code"]);
        Assert.Equal("n", (string?)error["param"]);
    }

    /// <summary>Records each request body the client sends, then sends it on.</summary>
    private sealed class Recorder(Action<string> onRequest) : DelegatingHandler(new HttpClientHandler())
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            onRequest(request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken));
            return await base.SendAsync(request, cancellationToken);
        }
    }
}

/// <summary>A fact that needs node and npm; skipped, with the reason shown, when they are not on PATH.</summary>
public sealed class NodeFactAttribute : FactAttribute
{
    /// <summary>A temporary folder with npm's <c>openai</c> package installed (once per run).</summary>
    internal static readonly Lazy<string> PackageFolder = new(() =>
    {
        string folder = Path.Combine(TinyModel.TempFolder, "node-openai");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "package.json"), """{"name":"vidkv-interop","version":"1.0.0","private":true,"type":"module"}""");
        Run("npm", folder, "install", "--no-audit", "--no-fund", "--loglevel=error", "openai@6");
        return folder;
    });

    public NodeFactAttribute()
    {
        if (!OnPath("node") || !OnPath("npm"))
        {
            Skip = "node and npm are not both on PATH: the OpenAI Node SDK test needs them (Debian: apt-get install nodejs npm).";
        }
    }

    internal static (string Out, string Err) Run(string file, string folder, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(5)), $"{file} {string.Join(' ', arguments)} did not finish in 5 minutes");
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', arguments)} exited {process.ExitCode}: {stderr.Result}");
        return (stdout.Result, stderr.Result);
    }

    private static bool OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator).Any(dir => File.Exists(Path.Combine(dir, name)));
}
