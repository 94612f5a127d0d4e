using Microsoft.Extensions.AI;
using VidKV.AI.Training.Synthetic;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.Memory;

/// <summary>The video memory through IChatClient: a remembered video answers later questions from its compressed cache.</summary>
public sealed class VideoMemoryClientTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("vidkv-memory-client-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task RememberedVideo_IsReusedByLaterQuestions_AndForgotten()
    {
        var sample = SceneGenerator.Generate(2027, new SceneOptions { Family = QuestionFamily.Counting, MinFrames = 16, MaxFrames = 16 });
        SampleWriter.WriteFrames(sample, _folder);
        var video = VidKVMedia.FromFrameFolder(_folder);
        var options = new ChatOptions { MaxOutputTokens = 8 }.WithFrameCount(16);
        using var client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.58" });
        var fractions = new List<double>();

        var remembered = await client.RememberVideoAsync(video, options, new Progress<double>(fractions.Add));
        var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [video, new TextContent(sample.Question)])], options);
        var again = await client.RememberVideoAsync(video, options);

        Assert.False(remembered.AlreadyRemembered);
        Assert.True(remembered.VideoTokens > 0 && remembered.KVBytes < remembered.KVFp16Bytes / 4, $"{remembered}");
        Assert.True(again.AlreadyRemembered);
        Assert.Equal(remembered.PromptTokens, reply.Usage!.CachedInputTokenCount);
        Assert.Equal(remembered.PromptTokens, reply.Usage.AdditionalCounts![VidKVUsage.CachedPromptTokensKey]);
        Assert.False(string.IsNullOrWhiteSpace(reply.Text));

        Assert.True(await client.ForgetVideoAsync(video) >= 1);
        var afterForget = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [video, new TextContent(sample.Question)])], options);
        Assert.Equal(0, afterForget.Usage!.CachedInputTokenCount);
    }

    [Fact]
    public async Task RememberVideo_WithATokenProtectingPreset_IsRefused_NamingWhy()
    {
        var sample = SceneGenerator.Generate(2028, new SceneOptions { Family = QuestionFamily.Counting, MinFrames = 8, MaxFrames = 8 });
        SampleWriter.WriteFrames(sample, _folder);
        using var client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.66" });

        var e = await Assert.ThrowsAsync<NotSupportedException>(() => client.RememberVideoAsync(VidKVMedia.FromFrameFolder(_folder), new ChatOptions().WithFrameCount(8)));

        Assert.Contains("protect", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task MemoryOff_NeverReuses_AndAFolderIsSharedByTwoClients()
    {
        var sample = SceneGenerator.Generate(2029, new SceneOptions { Family = QuestionFamily.Counting, MinFrames = 8, MaxFrames = 8 });
        string frames = Path.Combine(_folder, "frames"), store = Path.Combine(_folder, "store");
        SampleWriter.WriteFrames(sample, frames);
        var message = new ChatMessage(ChatRole.User, [VidKVMedia.FromFrameFolder(frames), new TextContent(sample.Question)]);
        var options = new ChatOptions { MaxOutputTokens = 4 }.WithFrameCount(8);

        using (var off = new VidKVChatClient(new VidKVChatClientOptions { VideoMemory = false }))
        {
            await off.GetResponseAsync([message], options);
            Assert.Equal(0, (await off.GetResponseAsync([message], options)).Usage!.CachedInputTokenCount);
        }

        using (var writer = new VidKVChatClient(new VidKVChatClientOptions { VideoMemoryFolder = store }))
        {
            await writer.GetResponseAsync([message], options);
        }

        Assert.NotEmpty(Directory.GetFiles(store));
        using var reader = new VidKVChatClient(new VidKVChatClientOptions { VideoMemoryFolder = store });
        Assert.True((await reader.GetResponseAsync([message], options)).Usage!.CachedInputTokenCount > 0);
    }
}
