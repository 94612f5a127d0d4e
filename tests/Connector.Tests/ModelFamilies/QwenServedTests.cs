#pragma warning disable OPENAI001 // CreateFilePart is marked for evaluation (OpenAI 2.15)
using System.ClientModel;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using OpenAI;
using OpenAI.Chat;
using VidKV.AI.Connector.Tests.Server;
using VidKV.AI.Mcp;

namespace VidKV.AI.Connector.Tests.ModelFamilies;

/// <summary>
/// A Qwen2.5-VL folder (the tiny transformers fixture) behind everything a user runs: the OpenAI server sample with the
/// OpenAI .NET client, the Semantic Kernel VideoPlugin and the MCP server. Answers equal the connector's own for the same
/// video, and a second question about a video reads it from the video memory.
/// </summary>
public sealed class QwenServedTests
{
    private static readonly Dictionary<string, string?> Model = new()
    {
        ["VidKV:ModelPath"] = QwenCheckpoint.Folder,
        ["VidKV:CachePreset"] = QwenCheckpoint.Preset,
        ["VidKV:FrameCount"] = "4",
        ["VidKV:MaxOutputTokens"] = "6",
        ["Logging:LogLevel:Default"] = "Warning",
    };

    private static async Task<string> DirectAnswerAsync(string question)
    {
        using var client = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = QwenCheckpoint.Folder, CachePreset = QwenCheckpoint.Preset, FrameCount = 4, MaxOutputTokens = 6 });
        return (await client.GetResponseAsync([TinyModel.VideoQuestion(question)])).Text;
    }

    [Fact]
    public async Task Server_OpenAIDotNetClient_AnswersAVideo_AndReportsTheReusedVideoAsCachedTokens()
    {
        const string Key = "qwen-server-key";
        await using var host = await ServerHost.StartAsync(new Dictionary<string, string?>(Model) { ["Server:ApiKey"] = Key });
        Assert.Equal("qwen2_5_vl", host.Model.GetService<VidKV.AI.Backend.ModelInfo>()!.Family);
        var chat = new ChatClient(host.Model.ModelId, new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(host.Address, "/v1") });
        UserChatMessage Ask(string question) => new(
            ChatMessageContentPart.CreateFilePart(BinaryData.FromBytes(TinyModel.VideoBytes), "video/mp4", "scene.mp4"),
            ChatMessageContentPart.CreateTextPart(question));

        var first = (await chat.CompleteChatAsync(Ask("What moves?"))).Value;
        var second = (await chat.CompleteChatAsync(Ask("What color is the circle?"))).Value;

        Assert.Equal(await DirectAnswerAsync("What moves?"), first.Content[0].Text);
        Assert.Equal(await DirectAnswerAsync("What color is the circle?"), second.Content[0].Text);
        Assert.Equal(0, first.Usage.InputTokenDetails?.CachedTokenCount ?? 0);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount > 0, $"{second.Usage.InputTokenDetails.CachedTokenCount} of {second.Usage.InputTokenCount}");
        Assert.True(second.Usage.InputTokenCount > second.Usage.InputTokenDetails.CachedTokenCount);
    }

    [Fact]
    public async Task SemanticKernel_VideoPlugin_AnswersAsTheClientDoes()
    {
        var builder = Kernel.CreateBuilder();
        builder.AddVidKVChatClient(o => { o.ModelPath = QwenCheckpoint.Folder; o.CachePreset = QwenCheckpoint.Preset; o.FrameCount = 4; o.MaxOutputTokens = 6; });
        builder.Plugins.AddVideoPlugin();
        var kernel = builder.Build();
        using var client = kernel.GetRequiredService<VidKVChatClient>();

        var answer = await kernel.InvokeAsync<string>("video", "ask_about_video", new KernelArguments { ["video"] = TinyModel.VideoPath, ["question"] = "What moves?" });
        var direct = await client.GetResponseAsync([TinyModel.VideoQuestion("What moves?")]);

        Assert.Equal(direct.Text.Trim(), answer);
        Assert.True(direct.Usage!.CachedInputTokenCount > 0); // the plugin's question left the video remembered
    }

    [Fact]
    public async Task McpServer_AsksRemembersAndForgets_WithAQwenFolder()
    {
        var settings = new Dictionary<string, string?>(Model) { ["Urls"] = "http://127.0.0.1:0" };
        await using var app = VidKVMcpServer.CreateHttp([], builder => builder.Configuration.AddInMemoryCollection(settings));
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        await using var mcp = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions { Endpoint = new Uri(address, "/mcp"), TransportMode = HttpTransportMode.StreamableHttp }));
        string video = "data:video/mp4;base64," + Convert.ToBase64String(TinyModel.VideoBytes);

        var remembered = await mcp.CallToolAsync("remember_video", new Dictionary<string, object?> { ["video"] = video });
        var asked = await mcp.CallToolAsync("ask_about_video", new Dictionary<string, object?> { ["video"] = video, ["question"] = "What moves?" });
        var forgot = await mcp.CallToolAsync("forget_video", new Dictionary<string, object?> { ["video"] = video });

        Assert.StartsWith("Remembered: ", Text(remembered));
        Assert.True(asked.IsError is not true, Text(asked));
        Assert.Equal(await DirectAnswerAsync("What moves?"), Text(asked));
        Assert.StartsWith("Forgot ", Text(forgot));
        await app.StopAsync();
    }

    private static string Text(CallToolResult result) => string.Concat(result.Content.OfType<TextContentBlock>().Select(b => b.Text));
}
