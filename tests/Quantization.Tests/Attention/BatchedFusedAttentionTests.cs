using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Tests.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Attention;

/// <summary>
/// <see cref="FusedAttention.AttendBatch"/> and the batched <see cref="QuantizedKVCache.AttendForDecode(IReadOnlyList{QuantizedKVCache}, Tensor, bool, bool)"/>
/// on the CPU: one call over sequences of different lengths gives, row by row and bit for bit, what one call per sequence
/// gives (the CUDA launch is compared the same way by <c>vidkv-bench cuda-check</c>).
/// </summary>
public sealed class BatchedFusedAttentionTests
{
    private static IEnumerable<FusedKernelPath> Paths()
        => new[] { FusedKernelPath.Auto, FusedKernelPath.Portable, FusedKernelPath.Avx2, FusedKernelPath.Avx512, FusedKernelPath.Chunked }.Where(FusedAttention.IsSupported);

    /// <summary>
    /// Caches of one batch item, 2 KV heads and 7 query heads per KV head (grouped-query 7:1), with different prompt
    /// lengths and decode steps (so different block counts and residual tails, one with no residual, one streamed over
    /// several blocks), and two forked from one snapshot (sharing its blocks) that went on differently.
    /// </summary>
    private static List<QuantizedKVCache> Caches(KVCacheOptions options, int dim, int seed)
    {
        random.manual_seed(seed);
        var offset = zeros(dim);
        offset[0] = 6f;
        offset[dim / 2] = -4f;
        Tensor Keys(int t) => (randn(1, 2, t, dim) * 2) + offset;
        var caches = new List<QuantizedKVCache>();
        foreach (var (prompt, steps) in new[] { (61, 13), (8, 0), (37, 2), (24, 40), (5, 1) })
        {
            var cache = new QuantizedKVCache(options);
            cache.Prefill(Keys(prompt), randn(1, 2, prompt, dim), randn(1, prompt));
            for (int i = 0; i < steps; i++)
            {
                cache.Append(Keys(1), randn(1, 2, 1, dim));
            }

            caches.Add(cache);
        }

        using var snapshot = caches[0].CreateSnapshot();
        foreach (int steps in new[] { 3, 11 })
        {
            var fork = snapshot.Fork();
            for (int i = 0; i < steps; i++)
            {
                fork.Append(Keys(1), randn(1, 2, 1, dim));
            }

            caches.Add(fork);
        }

        return caches;
    }

    [Theory]
    [InlineData("vidkv-1.5/1.58", CacheProfile.Compact)]
    [InlineData("vidkv-1.5/1.58", CacheProfile.Reference)]
    [InlineData("vidkv-1.5/1.66", CacheProfile.Compact)]
    [InlineData("kivi-2", CacheProfile.Reference)]
    [InlineData("fp16", CacheProfile.Compact)]
    public void AttendBatch_OnCpu_GivesEachRowWhatItsOwnCallGives_BitForBit(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        var caches = Caches(CacheTestData.Small(preset, profile), 16, 3);
        try
        {
            foreach (var (tq, causal) in new[] { (1, true), (1, false), (3, true) })
            {
                var queries = randn(caches.Count, 14, tq, 16) * 0.7;
                foreach (var path in Paths())
                {
                    var batched = FusedAttention.AttendBatch(caches, queries, causal, path: path);
                    Assert.Equal(new long[] { caches.Count, 14, tq, 16 }, batched.shape);
                    for (int i = 0; i < caches.Count; i++)
                    {
                        var alone = FusedAttention.Attend(caches[i], queries.narrow(0, i, 1), causal, path: path);
                        Assert.True(equal(batched.narrow(0, i, 1), alone).all().item<bool>(), $"{preset} {profile} {path} Tq={tq} sequence {i} of {caches[i].Length} tokens");
                    }
                }
            }
        }
        finally
        {
            caches.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void AttendForDecode_Batched_MixesFusedAndDequantizingCaches_AsPerSequenceCallsDo()
    {
        using var scope = NewDisposeScope();
        var fused = Caches(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact), 16, 5);
        var dequantizing = Caches(CacheTestData.Small("kivi-2", CacheProfile.Reference) with { DecodeAttention = DecodeAttention.Dequantize }, 16, 6);
        var caches = fused.Take(4).Concat(dequantizing.Take(3)).Concat(fused.Skip(4)).ToList();
        try
        {
            var queries = (randn(caches.Count, 14, 1, 16) * 0.7).to(ScalarType.Float16);
            var batched = QuantizedKVCache.AttendForDecode(caches, queries, causal: true);
            for (int i = 0; i < caches.Count; i++)
            {
                var alone = caches[i].AttendForDecode(queries.narrow(0, i, 1), causal: true);
                Assert.True(equal(batched.narrow(0, i, 1), alone).all().item<bool>(), $"sequence {i} ({caches[i].Options.Preset}, {caches[i].Length} tokens)");
            }
        }
        finally
        {
            fused.Concat(dequantizing).ToList().ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void AttendBatch_RefusesRepeatedCaches_BatchedCaches_MismatchedQueries_AndEmptyCaches()
    {
        using var scope = NewDisposeScope();
        var caches = Caches(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact), 16, 7);
        using var wide = new QuantizedKVCache(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact));
        wide.Prefill(randn(2, 2, 20, 16), randn(2, 2, 20, 16));
        using var empty = new QuantizedKVCache(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact));
        using var otherValues = new QuantizedKVCache(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact));
        otherValues.Prefill(randn(1, 2, 20, 16), randn(1, 2, 20, 8));
        try
        {
            var two = randn(2, 14, 1, 16);
            Assert.Contains("twice", Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(new[] { caches[0], caches[0] }, two)).Message, StringComparison.Ordinal);
            Assert.Contains("one item each", Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(new[] { caches[0], wide }, two)).Message, StringComparison.Ordinal);
            Assert.Contains("N = 3", Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(caches.Take(3).ToList(), two)).Message, StringComparison.Ordinal);
            Assert.Contains("value channels", Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(new[] { caches[0], otherValues }, two)).Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(caches.Take(2).ToList(), randn(2, 13, 1, 16)));
            Assert.Throws<InvalidOperationException>(() => FusedAttention.AttendBatch(new[] { caches[0], empty }, two));
            Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(caches.Take(2).ToList(), two, path: FusedKernelPath.Cuda));
            Assert.Throws<ArgumentException>(() => FusedAttention.AttendBatch(Array.Empty<QuantizedKVCache>(), two));
        }
        finally
        {
            caches.ForEach(c => c.Dispose());
        }
    }
}
