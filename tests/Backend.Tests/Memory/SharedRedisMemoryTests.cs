using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>
/// Two models that share nothing but one Redis (each its own HybridCache, so its own in-process memory): the second answers
/// about a video the first encoded without decoding it or running the vision tower.
/// </summary>
public sealed class SharedRedisMemoryTests : IClassFixture<RedisServer>
{
    private static readonly KVCacheOptions Compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
    private readonly RedisServer _redis;

    public SharedRedisMemoryTests(RedisServer redis) => _redis = redis;

    [Fact]
    public void SecondModel_AnswersFromTheFirstModelsRedisEntry_WithoutTheVisionTower()
    {
        // Both "processes" must use the same Redis key prefix: build the second with the first's instance name.
        string instance = $"vidkv-shared-{Guid.NewGuid():N}:";
        ServiceProvider Process() => new ServiceCollection()
            .AddStackExchangeRedisCache(o => { o.Configuration = _redis.Configuration; o.InstanceName = instance; })
            .AddHybridCache(o => o.MaximumPayloadBytes = 1 << 20).Services
            .BuildServiceProvider();
        using var firstProcess = Process();
        using var secondProcess = Process();
        using var first = BuiltInModel.Load();
        using var second = BuiltInModel.Load();
        first.ConfigureVideoMemory(new VideoMemoryOptions
        {
            SharedStore = new SerializedVideoMemoryStore(new HybridCacheVideoMemoryBlobStore(firstProcess.GetRequiredService<HybridCache>())),
        });
        second.ConfigureVideoMemory(new VideoMemoryOptions
        {
            SharedStore = new SerializedVideoMemoryStore(new HybridCacheVideoMemoryBlobStore(secondProcess.GetRequiredService<HybridCache>())),
        });
        var request = VideoMemoryTests.Ask("what color is the square?");

        VideoMemoryTests.Run(first, request, Compact);                 // encodes the video and stores it in Redis
        var firstReused = VideoMemoryTests.Run(first, request, Compact); // the first model's answer from its remembered video
        var answer = VideoMemoryTests.Run(second, request, Compact);

        Assert.Equal(0, second.VisualEncodes);
        Assert.Equal(0, second.MediaDecodes);
        Assert.True(answer.Usage.CachedPromptTokens > 0);
        Assert.Equal(firstReused.Tokens, answer.Tokens);
        Assert.Equal(1, first.VisualEncodes);
    }
}
