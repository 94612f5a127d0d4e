using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

/// <summary>
/// <see cref="QuantizedKVCache.AppendDecodeStep"/> (a batched decode step's keys and values written in place into every
/// cache's residual buffers) against <see cref="QuantizedKVCache.Append"/> per cache, on the CPU: the same content, the
/// same flushes, the same attention bit for bit, snapshots of the same bytes, and the buffers counted in the bytes held.
/// The CUDA launch is compared the same way by <c>vidkv-bench cuda-check</c>.
/// </summary>
public sealed class AppendDecodeStepTests
{
    private const int Heads = 2, Dim = 16;

    /// <summary>Prompts of different lengths (one a whole number of groups, so its residual starts empty).</summary>
    private static readonly int[] Prompts = { 13, 8, 30, 5 };

    private static (List<QuantizedKVCache> Alone, List<QuantizedKVCache> Batched) TwoSets(KVCacheOptions options, int seed)
    {
        random.manual_seed(seed);
        var alone = new List<QuantizedKVCache>();
        var batched = new List<QuantizedKVCache>();
        foreach (int prompt in Prompts)
        {
            var k = (randn(1, Heads, prompt, Dim) * 2) + 1;
            var v = randn(1, Heads, prompt, Dim);
            var scores = rand(1, prompt);
            foreach (var set in new[] { alone, batched })
            {
                var cache = new QuantizedKVCache(options);
                cache.Prefill(k, v, scores);
                set.Add(cache);
            }
        }

        return (alone, batched);
    }

    [Theory]
    [InlineData("vidkv-1.5/1.58", CacheProfile.Compact)]
    [InlineData("vidkv-1.5/1.58", CacheProfile.Reference)]
    [InlineData("vidkv-1.5/1.66", CacheProfile.Compact)]
    [InlineData("kivi-2", CacheProfile.Reference)]
    [InlineData("fp16", CacheProfile.Compact)]
    public void AppendDecodeStep_MatchesAppendPerCache_ThroughFlushes(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small(preset, profile);
        var (alone, batched) = TwoSets(options, 5);
        try
        {
            for (int step = 0; step < 21; step++)
            {
                using var inner = NewDisposeScope();
                var k = randn(Prompts.Length, Heads, 1, Dim);
                var v = randn(Prompts.Length, Heads, 1, Dim);
                for (int i = 0; i < alone.Count; i++)
                {
                    alone[i].Append(k.narrow(0, i, 1), v.narrow(0, i, 1));
                }

                QuantizedKVCache.AppendDecodeStep(batched, k, v);
                var queries = randn(Prompts.Length, Heads * 3, 1, Dim);
                for (int i = 0; i < alone.Count; i++)
                {
                    string where = $"{preset} {profile} step {step} cache {i}";
                    Assert.Equal(alone[i].Length, batched[i].Length);
                    Assert.Equal(alone[i].FlushCount, batched[i].FlushCount);
                    Assert.Equal(alone[i].ResidualLength, batched[i].ResidualLength);
                    var (ka, va) = alone[i].GetKeysValues();
                    var (kb, vb) = batched[i].GetKeysValues();
                    Assert.Equal(ka.shape, kb.shape);
                    Assert.True(equal(ka, kb).all().item<bool>() && equal(va, vb).all().item<bool>(), $"{where}: cached keys or values differ");
                    var q = queries.narrow(0, i, 1);
                    Assert.True(equal(alone[i].AttendForDecode(q, causal: true), batched[i].AttendForDecode(q, causal: true)).all().item<bool>(), $"{where}: decode attention differs");
                    if (alone[i].QuantizedLength > 0)
                    {
                        Assert.True(equal(alone[i].AttendFused(q, causal: true, path: FusedKernelPath.Portable), batched[i].AttendFused(q, causal: true, path: FusedKernelPath.Portable)).all().item<bool>(), $"{where}: fused attention differs");
                    }
                }

                // The batched call over every cache reads the buffers too.
                Assert.True(equal(QuantizedKVCache.AttendForDecode(alone, queries, causal: true), QuantizedKVCache.AttendForDecode(batched, queries, causal: true)).all().item<bool>(), $"{preset} {profile} step {step}: batched attention differs");
            }
        }
        finally
        {
            alone.ForEach(c => c.Dispose());
            batched.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void AppendDecodeStep_BuffersAreCountedInBytesHeld_AndSnapshotsHoldOnlyTheTokens()
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact); // R = 8
        var (alone, batched) = TwoSets(options, 9);
        try
        {
            var k = randn(Prompts.Length, Heads, 1, Dim, dtype: ScalarType.BFloat16);
            var v = randn(Prompts.Length, Heads, 1, Dim, dtype: ScalarType.BFloat16);
            for (int i = 0; i < alone.Count; i++)
            {
                alone[i].Append(k.narrow(0, i, 1), v.narrow(0, i, 1));
            }

            QuantizedKVCache.AppendDecodeStep(batched, k, v);
            for (int i = 0; i < alone.Count; i++)
            {
                // The residual is kept in buffers of R tokens: those bytes are held, whatever the tokens in them.
                long residualType = KVCacheOptions.DefaultResidualType(ScalarType.Float32) == ScalarType.Float16 ? 2 : 4;
                long buffers = 2L * Heads * options.ResidualLength * Dim * residualType;
                Assert.Equal(buffers, batched[i].Memory.ResidualBytes);
                Assert.Equal(alone[i].Memory.ResidualElements, batched[i].Memory.ResidualElements);
                Assert.True(batched[i].Memory.ResidualBytes > alone[i].Memory.ResidualBytes);

                using var a = alone[i].CreateSnapshot();
                using var b = batched[i].CreateSnapshot();
                Assert.Equal(a.Memory, b.Memory);
                using var fork = b.Fork();
                var (ka, va) = alone[i].GetKeysValues();
                var (kf, vf) = fork.GetKeysValues();
                Assert.True(equal(ka, kf).all().item<bool>() && equal(va, vf).all().item<bool>(), $"cache {i}: a fork of the snapshot differs");
            }
        }
        finally
        {
            alone.ForEach(c => c.Dispose());
            batched.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void AppendDecodeStep_FillsAnEmptyCache_AsAppendDoes()
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact);
        using var empty = new QuantizedKVCache(options);
        using var filled = new QuantizedKVCache(options);
        filled.Prefill(randn(1, Heads, 6, Dim), randn(1, Heads, 6, Dim));
        var k = randn(2, Heads, 1, Dim);
        var v = randn(2, Heads, 1, Dim);
        QuantizedKVCache.AppendDecodeStep(new[] { empty, filled }, k, v);
        Assert.Equal(1, empty.Length);
        Assert.Equal(7, filled.Length);
        using var reference = new QuantizedKVCache(options);
        reference.Append(k.narrow(0, 0, 1), v.narrow(0, 0, 1));
        Assert.True(equal(empty.GetKeysValues().Keys, reference.GetKeysValues().Keys).all().item<bool>());
        Assert.True(equal(empty.GetKeysValues().Values, reference.GetKeysValues().Values).all().item<bool>());
    }

    [Fact]
    public void AppendDecodeStep_RejectsBadInput_NamingIt()
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact);
        using var a = new QuantizedKVCache(options);
        using var b = new QuantizedKVCache(options);
        a.Prefill(randn(1, Heads, 6, Dim), randn(1, Heads, 6, Dim));
        b.Prefill(randn(1, Heads, 6, Dim), randn(1, Heads, 6, Dim));

        var twice = Assert.Throws<ArgumentException>(() => QuantizedKVCache.AppendDecodeStep(new[] { a, a }, randn(2, Heads, 1, Dim), randn(2, Heads, 1, Dim)));
        Assert.Contains("appears twice", twice.Message);
        var count = Assert.Throws<ArgumentException>(() => QuantizedKVCache.AppendDecodeStep(new[] { a, b }, randn(3, Heads, 1, Dim), randn(3, Heads, 1, Dim)));
        Assert.Contains("[2, H, 1, D]", count.Message);
        var tokens = Assert.Throws<ArgumentException>(() => QuantizedKVCache.AppendDecodeStep(new[] { a, b }, randn(2, Heads, 2, Dim), randn(2, Heads, 2, Dim)));
        Assert.Contains("got [2, 2, 2, 16]", tokens.Message);
        Assert.Throws<ArgumentException>(() => QuantizedKVCache.AppendDecodeStep(new[] { a, b }, randn(2, Heads + 1, 1, Dim), randn(2, Heads + 1, 1, Dim)));

        // Nothing was lost or half-written by the rejected calls.
        Assert.Equal(6, a.Length);
        Assert.Equal(6, b.Length);
    }
}
