using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using VidKV.AI.Backend.Memory;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>Snapshots shared through HybridCache over a real Redis: written by one cache, read by another with its own memory.</summary>
public sealed class HybridCacheVideoMemoryBlobStoreTests : IClassFixture<RedisServer>
{
    private readonly RedisServer _redis;

    public HybridCacheVideoMemoryBlobStoreTests(RedisServer redis) => _redis = redis;

    /// <summary>A HybridCache of its own (its own in-process L1) over the shared Redis, as another process would have.</summary>
    private ServiceProvider NewProcess() => new ServiceCollection()
        .AddStackExchangeRedisCache(o => { o.Configuration = _redis.Configuration; o.InstanceName = "vidkv-test:"; })
        .AddHybridCache(o => o.MaximumPayloadBytes = 1 << 20).Services
        .BuildServiceProvider();

    private static byte[] Payload(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task Payload_WrittenByOneProcess_IsReadByAnother_InChunks()
    {
        string key = $"video-{Guid.NewGuid():N}";
        var payload = Payload((3 * 1_000_000) + 12_345, 1);
        using (var first = NewProcess())
        {
            await new HybridCacheVideoMemoryBlobStore(first.GetRequiredService<HybridCache>()).SetAsync(key, payload);
        }

        using var second = NewProcess();
        var read = await new HybridCacheVideoMemoryBlobStore(second.GetRequiredService<HybridCache>()).TryGetAsync(key);

        Assert.Equal(payload, read);
        var redis = second.GetRequiredService<IDistributedCache>();
        Assert.NotNull(await redis.GetAsync($"{key}:3")); // four chunks: 3 x 1,000,000 bytes and the rest
        Assert.Null(await redis.GetAsync($"{key}:4"));
    }

    [Fact]
    public async Task MissingOrAlteredChunk_ReadsAsAbsent_NeverAsAWrongPayload()
    {
        string key = $"video-{Guid.NewGuid():N}";
        var payload = Payload(2_500_000, 2);
        using (var first = NewProcess())
        {
            var cache = new HybridCacheVideoMemoryBlobStore(first.GetRequiredService<HybridCache>());
            await cache.SetAsync(key, payload);
            // A chunk of the same length but other bytes (as a concurrent writer of another payload could leave it).
            await first.GetRequiredService<HybridCache>().SetAsync($"{key}:1", Payload(1_000_000, 3));
        }

        using (var second = NewProcess())
        {
            Assert.Null(await new HybridCacheVideoMemoryBlobStore(second.GetRequiredService<HybridCache>()).TryGetAsync(key));
        }

        using (var third = NewProcess())
        {
            var cache = new HybridCacheVideoMemoryBlobStore(third.GetRequiredService<HybridCache>());
            await cache.SetAsync(key, payload);
            await third.GetRequiredService<IDistributedCache>().RemoveAsync($"{key}:2"); // evicted
        }

        using var fourth = NewProcess();
        Assert.Null(await new HybridCacheVideoMemoryBlobStore(fourth.GetRequiredService<HybridCache>()).TryGetAsync(key));
    }

    [Fact]
    public async Task Removed_ReadsAsAbsent_AndAnUnknownKeyToo()
    {
        string key = $"video-{Guid.NewGuid():N}";
        using var process = NewProcess();
        var cache = new HybridCacheVideoMemoryBlobStore(process.GetRequiredService<HybridCache>());
        await cache.SetAsync(key, Payload(10_000, 4));
        Assert.NotNull(await cache.TryGetAsync(key));

        Assert.True(await cache.RemoveAsync(key));

        Assert.Null(await cache.TryGetAsync(key));
        Assert.Null(await cache.TryGetAsync($"never-{Guid.NewGuid():N}"));
    }
}
