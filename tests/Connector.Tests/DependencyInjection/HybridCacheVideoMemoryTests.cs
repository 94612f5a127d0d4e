using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Tests.Memory;
using VidKV.AI.Connector.Tests.Server;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.DependencyInjection;

/// <summary>
/// <c>AddVidKVChatClient</c> in a container with a HybridCache over a real Redis: the video memory is shared through it by
/// default (two containers, each with its own model and in-process memory, share a video), and
/// <see cref="VidKVChatClientOptions.UseHybridCacheFromServices"/> = false keeps it in the process.
/// </summary>
public sealed class HybridCacheVideoMemoryTests : IClassFixture<RedisServer>
{
    private readonly RedisServer _redis;

    public HybridCacheVideoMemoryTests(RedisServer redis) => _redis = redis;

    private static SyntheticClip Clip => SyntheticClip.MotionScene;

    private static ChatOptions Options => new ChatOptions { MaxOutputTokens = 6 }.WithFrameCount(Clip.Frames);

    private static ChatMessage[] Question => [new ChatMessage(ChatRole.User, [new DataContent(Clip.Mp4, "video/mp4"), new TextContent(Clip.Question)])];

    [Fact]
    public async Task AddVidKVChatClient_WithTheAppsHybridCacheOverRedis_SharesTheVideoMemoryByDefault()
    {
        string instance = $"vidkv-di-{Guid.NewGuid():N}:";
        await using var firstApp = App(instance, redis: true);
        await using var secondApp = App(instance, redis: true);
        var first = firstApp.GetRequiredService<IChatClient>();
        var second = secondApp.GetRequiredService<IChatClient>();

        var asked = await first.GetResponseAsync(Question, Options);
        var answered = await second.GetResponseAsync(Question, Options);

        Assert.Same(secondApp.GetRequiredService<HybridCache>(), second.GetService<VidKVChatClientOptions>()!.SharedVideoMemory);
        Assert.Equal(0, asked.Usage!.CachedInputTokenCount);
        Assert.True(answered.Usage!.CachedInputTokenCount > 0);
        Assert.Equal(0, second.GetService<VideoLanguageModelBase>()!.VisualEncodes);
        Assert.Equal(0, second.GetService<VideoLanguageModelBase>()!.MediaDecodes);
        Assert.Equal(asked.Text, answered.Text);
    }

    [Fact]
    public async Task AddVidKVChatClient_OptedOut_KeepsTheVideoMemoryInTheProcess()
    {
        string instance = $"vidkv-di-{Guid.NewGuid():N}:";
        await using var firstApp = App(instance, redis: true);
        await using var optedOutApp = App(instance, redis: true, o => o.UseHybridCacheFromServices = false);
        var first = firstApp.GetRequiredService<IChatClient>();
        var optedOut = optedOutApp.GetRequiredService<IChatClient>();

        await first.GetResponseAsync(Question, Options);
        var answered = await optedOut.GetResponseAsync(Question, Options);

        Assert.Null(optedOut.GetService<VidKVChatClientOptions>()!.SharedVideoMemory);
        Assert.Equal(0, answered.Usage!.CachedInputTokenCount);
        Assert.Equal(1, optedOut.GetService<VideoLanguageModelBase>()!.VisualEncodes);
    }

    [Fact]
    public async Task AddVidKVChatClient_WithAHybridCacheWithoutADistributedCache_DoesNotUseIt()
    {
        // Its L1 only would hold second, serialized copies of what the in-process video memory holds already.
        await using var app = App($"vidkv-di-{Guid.NewGuid():N}:", redis: false);

        Assert.Null(app.GetRequiredService<VidKVChatClient>().GetService<VidKVChatClientOptions>()!.SharedVideoMemory);
    }

    private ServiceProvider App(string instance, bool redis, Action<VidKVChatClientOptions>? configure = null)
    {
        var services = new ServiceCollection();
        if (redis)
        {
            services.AddStackExchangeRedisCache(o => { o.Configuration = _redis.Configuration; o.InstanceName = instance; });
        }

        services.AddHybridCache(o => o.MaximumPayloadBytes = 1 << 20);
        services.AddVidKVChatClient(o =>
        {
            o.CachePreset = "vidkv-1.5/1.58";
            o.FrameCount = Clip.Frames;
            configure?.Invoke(o);
        });
        return services.BuildServiceProvider();
    }
}
