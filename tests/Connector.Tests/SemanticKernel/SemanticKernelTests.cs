using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using ChatMessageContent = Microsoft.SemanticKernel.ChatMessageContent;

namespace VidKV.AI.Connector.Tests.SemanticKernel;

/// <summary>The client through Semantic Kernel: prompts, the chat completion service, and the VideoPlugin's functions.</summary>
public sealed class SemanticKernelTests
{
    private static Kernel BuildKernel()
    {
        var builder = Kernel.CreateBuilder();
        builder.AddVidKVChatClient(o => { o.ModelPath = TinyModel.Folder; o.FrameCount = 4; o.MaxOutputTokens = 4; });
        builder.Plugins.AddVideoPlugin();
        return builder.Build();
    }

    [Fact]
    public async Task InvokePromptAsync_AnswersWithTheClient()
    {
        var kernel = BuildKernel();
        var client = kernel.GetRequiredService<IChatClient>();

        var result = await kernel.InvokePromptAsync("Name a shape.");
        var direct = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Name a shape.")]);

        Assert.Equal(direct.Text, result.ToString());
        kernel.GetRequiredService<VidKVChatClient>().Dispose();
    }

    [Fact]
    public async Task ChatCompletionService_ReadsAVideoInTheHistory()
    {
        var kernel = BuildKernel();
        var service = kernel.GetRequiredService<IChatCompletionService>();
        var history = new ChatHistory();
#pragma warning disable SKEXP0001 // BinaryContent is SK's only content for a video
        history.AddUserMessage([new BinaryContent(TinyModel.VideoBytes, "video/mp4"), new Microsoft.SemanticKernel.TextContent("What moves?")]);
#pragma warning restore SKEXP0001

        var reply = await service.GetChatMessageContentAsync(history);
        var direct = await kernel.GetRequiredService<IChatClient>().GetResponseAsync([TinyModel.VideoQuestion("What moves?")]);

        Assert.Equal(direct.Text, reply.Content ?? string.Empty);
        kernel.GetRequiredService<VidKVChatClient>().Dispose();
    }

    [Fact]
    public async Task VideoPlugin_AskAboutVideo_AnswersAsTheClientDoes()
    {
        var kernel = BuildKernel();
        Assert.Contains(kernel.Plugins, p => p.Name == "video" && p.Contains("ask_about_video") && p.Contains("describe_video"));

        var answer = await kernel.InvokeAsync<string>("video", "ask_about_video", new KernelArguments { ["video"] = TinyModel.VideoPath, ["question"] = "What moves?" });
        var direct = await kernel.GetRequiredService<IChatClient>().GetResponseAsync([TinyModel.VideoQuestion("What moves?")]);

        Assert.Equal(direct.Text.Trim(), answer);
        kernel.GetRequiredService<VidKVChatClient>().Dispose();
    }

    [Fact]
    public async Task VideoPlugin_SeveralQuestionsOfOneVideo_ReuseItsMemory_AndSaySo()
    {
        var kernel = BuildKernel();
        var client = kernel.GetRequiredService<VidKVChatClient>();
        var plugin = new VideoPlugin(client);

        var first = await plugin.AnswerAsync(TinyModel.VideoPath, "What moves?");
        var second = await plugin.AnswerAsync(TinyModel.VideoPath, "What color is it?");
        var third = await plugin.AnswerAsync(TinyModel.VideoPath, "What moves?");
        var direct = await client.GetResponseAsync([TinyModel.VideoQuestion("What color is it?")]);

        Assert.False(first.FromMemory);
        Assert.Equal(0, first.CachedPromptTokens);
        Assert.True(second.FromMemory);
        Assert.True(second.CachedPromptTokens > 0 && second.CachedPromptTokens < second.PromptTokens, $"{second}");
        Assert.True(third.CachedPromptTokens >= second.CachedPromptTokens, $"{third}"); // the repeated question may reuse more of its own prompt
        Assert.Equal(first.Text, third.Text); // an answer does not depend on whether the video was remembered
        Assert.Equal(direct.Text.Trim(), second.Text);
        Assert.True(second.TimeToFirstToken > TimeSpan.Zero && second.TimeToFirstToken <= second.Elapsed, $"{second}");
        client.Dispose();
    }

    [Fact]
    public async Task VideoPlugin_WebAddressWithoutHttpClient_SaysHowToFixIt()
    {
        var kernel = BuildKernel();
        var e = await Assert.ThrowsAsync<NotSupportedException>(() =>
            kernel.InvokeAsync("video", "ask_about_video", new KernelArguments { ["video"] = "https://example.invalid/a.mp4", ["question"] = "What moves?" }));
        Assert.Contains("no HttpClient", e.Message);
        kernel.GetRequiredService<VidKVChatClient>().Dispose();
    }
}
