using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.ModelFamilies;

/// <summary>The second family through the IChatClient, untouched: the tiny Qwen2.5-VL fixture answers an image and a video.</summary>
public sealed class QwenThroughTheClientTests
{
    private static string Fixture()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Backend.Tests", "Fixtures", "qwen25vl-tiny", "model");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Backend.Tests/Fixtures/qwen25vl-tiny/model not found.");
    }

    [Fact]
    public async Task Qwen25VL_AnswersAVideoAndAnImage_ThroughTheChatClient()
    {
        using var client = new VidKVChatClient(new VidKVChatClientOptions { ModelPath = Fixture(), CachePreset = "vidkv-1.5/1.58" });
        Assert.Equal("qwen2_5_vl", client.GetService<ModelInfo>()!.Family);
        var options = new ChatOptions { MaxOutputTokens = 4 }.WithFrameCount(4);

        var video = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(TinyModel.VideoBytes, "video/mp4"), new TextContent("What moves?")])], options);
        var image = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(TinyModel.PngBytes, "image/png"), new TextContent("What is it?")])], options);

        Assert.True(video.Usage!.AdditionalCounts![VidKVUsage.VideoTokensKey] > 0);
        Assert.True(image.Usage!.AdditionalCounts![VidKVUsage.ImageTokensKey] > 0);
        Assert.Equal(4, video.Usage.OutputTokenCount);
        Assert.True(video.Usage.AdditionalCounts[VidKVUsage.KVBytesKey] < video.Usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey]);
    }
}
