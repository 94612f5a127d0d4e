using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.ModelFamilies;

/// <summary>The second family through the IChatClient, untouched: the tiny Qwen2.5-VL fixture answers an image and a video, and remembers them.</summary>
public sealed class QwenThroughTheClientTests
{
    [Fact]
    public async Task Qwen25VL_AnswersAVideoAndAnImage_ThroughTheChatClient()
    {
        using var client = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = QwenCheckpoint.Folder, CachePreset = QwenCheckpoint.Preset });
        Assert.Equal("qwen2_5_vl", client.GetService<ModelInfo>()!.Family);
        var options = new ChatOptions { MaxOutputTokens = 4 }.WithFrameCount(4);

        var video = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(TinyModel.VideoBytes, "video/mp4"), new TextContent("What moves?")])], options);
        var image = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(TinyModel.PngBytes, "image/png"), new TextContent("What is it?")])], options);

        Assert.True(video.Usage!.AdditionalCounts![VidKVUsage.VideoTokensKey] > 0);
        Assert.True(image.Usage!.AdditionalCounts![VidKVUsage.ImageTokensKey] > 0);
        Assert.Equal(4, video.Usage.OutputTokenCount);
        Assert.True(video.Usage.AdditionalCounts[VidKVUsage.KVBytesKey] < video.Usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey]);
    }

    [Fact]
    public async Task Qwen25VL_VideoMemory_ReusesTheVideo_ReportsItInUsage_AndAnswersAsWithoutIt()
    {
        var options = new ChatOptions { MaxOutputTokens = 4 }.WithFrameCount(4);
        var video = new DataContent(TinyModel.VideoBytes, "video/mp4");
        ChatMessage Ask(string question) => new(ChatRole.User, [video, new TextContent(question)]);
        string firstAnswer;
        using (var fresh = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = QwenCheckpoint.Folder, CachePreset = QwenCheckpoint.Preset }))
        {
            var first = await fresh.GetResponseAsync([Ask("What moves?")], options);
            Assert.Equal(0, first.Usage!.CachedInputTokenCount);
            firstAnswer = first.Text;
        }

        using var client = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = QwenCheckpoint.Folder, CachePreset = QwenCheckpoint.Preset });
        var remembered = await client.RememberVideoAsync(video, options);
        var reply = await client.GetResponseAsync([Ask("What moves?")], options);
        var turn2 = await client.GetResponseAsync([Ask("What moves?"), new ChatMessage(ChatRole.Assistant, reply.Text), new ChatMessage(ChatRole.User, "And then?")], options);

        Assert.False(remembered.AlreadyRemembered);
        Assert.True(remembered.VideoTokens > 0 && remembered.KVBytes < remembered.KVFp16Bytes, $"{remembered}");
        Assert.Equal(remembered.PromptTokens, reply.Usage!.CachedInputTokenCount);
        Assert.Equal(remembered.PromptTokens, reply.Usage.AdditionalCounts![VidKVUsage.CachedPromptTokensKey]);
        Assert.Equal(firstAnswer, reply.Text);
        Assert.True(turn2.Usage!.CachedInputTokenCount > remembered.PromptTokens, $"turn 2 reused {turn2.Usage.CachedInputTokenCount} of {turn2.Usage.InputTokenCount}");
        Assert.True(await client.ForgetVideoAsync(video) >= 1);
    }
}
