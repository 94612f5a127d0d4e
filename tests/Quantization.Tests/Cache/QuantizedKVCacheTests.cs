using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Cache;

public sealed class QuantizedKVCacheTests
{
    public static TheoryData<string, CacheProfile> AllPresets()
    {
        var data = new TheoryData<string, CacheProfile>();
        foreach (var p in KVCacheOptions.PresetNames)
        {
            data.Add(p, CacheProfile.Reference);
            data.Add(p, CacheProfile.Compact);
        }

        return data;
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Fp16Preset_ReturnsWhatWasCached_In16Bits(ScalarType type)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        var k = randn(2, 3, 37, 16).to(type);
        var v = randn(2, 3, 37, 16).to(type);
        var k2 = randn(2, 3, 1, 16).to(type);
        var v2 = randn(2, 3, 1, 16).to(type);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("fp16"));

        cache.Prefill(k, v);
        cache.Append(k2, v2);
        var (kk, vv) = cache.GetKeysValues();

        // 16-bit inputs are held as they are; float32 is held as fp16 and returned as float32.
        var held = type == ScalarType.Float32 ? ScalarType.Float16 : type;
        Assert.Equal(held, cache.ResidualKeys!.dtype);
        Assert.Equal(held, cache.ResidualValues!.dtype);
        Assert.Equal(type, kk.dtype);
        Assert.True(kk.eq(cat(new[] { k, k2 }, 2).to(held).to(type)).all().item<bool>());
        Assert.True(vv.eq(cat(new[] { v, v2 }, 2).to(held).to(type)).all().item<bool>());
        Assert.Equal(0, cache.QuantizedLength);
        Assert.Equal(38 * 2 * 3 * 16 * 2 * 2, cache.Memory.TotalBytes);
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Fp16Preset_HoldsExactlyItsFp16Figure(ScalarType type)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("fp16"));
        cache.Prefill(randn(1, 4, 100, 32).to(type), randn(1, 4, 100, 32).to(type));
        for (int i = 0; i < 5; i++)
        {
            cache.Append(randn(1, 4, 1, 32).to(type), randn(1, 4, 1, 32).to(type));
        }

        var memory = cache.Memory;
        Assert.Equal(memory.Fp16Bytes, memory.TotalBytes);
        Assert.Equal(1.0, memory.RatioToFp16);
        Assert.Equal(CacheTestData.HeldTensors(cache).Sum(t => t.NumberOfElements * t.ElementSize), memory.TotalBytes);
    }

    [Fact]
    public void ResidualType_Float32_KeepsFullPrecisionAtTwiceTheBytes()
    {
        using var scope = NewDisposeScope();
        var k = randn(1, 2, 10, 8);
        var v = randn(1, 2, 10, 8);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("fp16") with { ResidualType = ScalarType.Float32 });
        cache.Prefill(k, v);

        Assert.True(cache.GetKeysValues().Keys.eq(k).all().item<bool>());
        Assert.Equal(2 * cache.Memory.Fp16Bytes, cache.Memory.TotalBytes);
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void QuantizedPresets_HoldTheResidualIn16Bits_AndAttendWithinTolerance(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var k = randn(1, 2, 77, 16) * 2;
        var v = randn(1, 2, 77, 16);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, profile) with { GroupSize = 4, ResidualLength = 8 });
        cache.Prefill(k, v);
        cache.Append(randn(1, 2, 2, 16), randn(1, 2, 2, 16));
        Assert.True(cache.ResidualLength > 0);
        Assert.Equal(ScalarType.Float16, cache.ResidualKeys!.dtype);
        Assert.Equal(ScalarType.Float16, cache.ResidualValues!.dtype);
        Assert.Equal(2L * cache.Memory.ResidualElements, cache.Memory.ResidualBytes);

        // Every attention path reads the 16-bit residual: fused (CPU kernels and chunked) against dequantize-then-attend.
        var query = randn(1, 4, 1, 16);
        var expected = cache.Attend(query);
        foreach (var path in new[] { FusedKernelPath.Auto, FusedKernelPath.Portable, FusedKernelPath.Chunked })
        {
            double diff = MaxAbsDiff(expected, cache.AttendFused(query, path: path));
            Assert.True(diff < 1e-4, $"{preset} {profile} {path}: max abs diff {diff:E1}");
        }
    }

    [Fact]
    public void Cache_OwnsCopies_NotViewsOfTheCallersTensors()
    {
        using var scope = NewDisposeScope();
        var k = randn(1, 1, 6, 8);
        var v = randn(1, 1, 6, 8);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("fp16"));
        cache.Prefill(k, v);
        var before = cache.GetKeysValues().Keys.clone();

        k.fill_(7f);

        Assert.True(cache.GetKeysValues().Keys.eq(before).all().item<bool>());
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void ByteAccount_EqualsStorageOfHeldTensors(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, profile));
        cache.Prefill(randn(1, 2, 300, 64).half(), randn(1, 2, 300, 64).half(), randn(300));
        for (int i = 0; i < 150; i++)
        {
            cache.Append(randn(1, 2, 1, 64).half(), randn(1, 2, 1, 64).half());
        }

        var held = CacheTestData.HeldTensors(cache).ToList();
        long bytes = held.Sum(t => t.NumberOfElements * t.ElementSize);
        var m = cache.Memory;

        Assert.Equal(bytes, m.TotalBytes);
        Assert.All(held, t => Assert.True(t.is_contiguous(), "held tensors are compact"));
        Assert.Equal(450L * 2 * 64 * 2, m.Elements);
        Assert.Equal(cache.QuantizedLength * 2 * 64 * 2, m.QuantizedElements);
        Assert.Equal(8.0 * m.TotalBytes / m.Elements, m.BitsPerElement, 9);
    }

    [Fact]
    public void ReferenceVidKV158_StoresWhatTheReleasedCodeStores()
    {
        // Keys: 64 outlier channels at 2 bits + fp16 scale and zero per 32 tokens (3 bits); 64 easy channels as
        // 128 FFT components at 1 bit + fp16 scale and zero (2 bits each, 4 per element). Values: trits in 2 bits
        // + fp16 scale and zero (3 bits). (3 + 4) / 2 and 3 average to 3.25 bits, plus the channel index lists.
        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58"));
        cache.Prefill(randn(1, 4, 1024, 128).half(), randn(1, 4, 1024, 128).half());
        var m = cache.Memory;

        long elements = 1024L * 4 * 128;
        Assert.Equal((elements / 2 * 2 / 8) + (elements * 1 / 8) + (elements * 2 / 8), m.CodeBytes);
        Assert.Equal((elements / 2 / 32 * 2 * 2) + (elements / 32 * 2 * 2) + (elements / 32 * 2 * 2), m.MetadataBytes);
        Assert.Equal(128 * 8, m.IndexBytes);
        Assert.InRange(m.QuantizedBitsPerElement, 3.25, 3.26);
    }

    [Fact]
    public void CompactVidKV158_StaysAtOrBelowTwoBits()
    {
        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact));
        cache.Prefill(randn(1, 4, 1024, 128).half(), randn(1, 4, 1024, 128).half());
        var m = cache.Memory;

        long elements = 1024L * 4 * 128;
        // Keys: 2-bit outliers + rfft 1-bit easy channels; values: 128 trits in 26 bytes per token row.
        Assert.Equal((elements / 2 * 2 / 8) + (elements / 2 / 8) + (1024L * 4 * 26), m.CodeBytes);
        Assert.Equal((elements / 2 / 32 * 2 * 2) + (elements / 2 / 32 * 2), m.MetadataBytes);
        Assert.True(m.QuantizedBitsPerElement <= 2.0, $"{m.QuantizedBitsPerElement} bits");
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void DecodeOneTokenAtATime_NeverMakesPartialGroups(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        var options = CacheTestData.Small(preset, profile);
        using var cache = new QuantizedKVCache(options);
        cache.Prefill(randn(1, 2, 5, 16), randn(1, 2, 5, 16));
        for (int i = 0; i < 40; i++)
        {
            cache.Append(randn(1, 2, 1, 16), randn(1, 2, 1, 16));
            Assert.All(cache.Blocks, b => Assert.Equal(0, b.Tokens % options.GroupSize));
            Assert.True(cache.ResidualLength < options.ResidualLength || !options.IsQuantized);
            Assert.Equal(6 + i, cache.Length);
        }
    }

    [Fact]
    public void RequantizeAll_FollowsTheReleasedCodeStepByStep()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var options = CacheTestData.Small("vidkv-1.5/2", CacheProfile.Reference) with { MetadataType = ScalarType.Float32 };
        using var cache = new QuantizedKVCache(options);
        using var shadow = new QuantizedKVCache(options);
        var k = randn(1, 2, 10, 16);
        var v = randn(1, 2, 10, 16);

        cache.Prefill(k, v);
        Assert.Equal((8L, 2L), (cache.QuantizedLength, cache.ResidualLength));

        // The residual grows to R = 8 (6 appends), then everything (dequantized + residual) is re-quantized.
        var expectedFlushAt = new[] { 6, 14, 22 };
        int flushes = 0;
        for (int step = 1; step <= 24; step++)
        {
            var (before, beforeV) = cache.GetKeysValues();
            var nk = randn(1, 2, 1, 16);
            var nv = randn(1, 2, 1, 16);
            cache.Append(nk, nv);

            // The residual holds float32 keys and values in fp16 (KVCacheOptions.DefaultResidualType): what gets re-quantized.
            nk = nk.to(ScalarType.Float16).to(ScalarType.Float32);
            nv = nv.to(ScalarType.Float16).to(ScalarType.Float32);
            if (expectedFlushAt.Contains(step))
            {
                flushes++;
                long total = 10 + step;
                Assert.Equal(flushes, cache.FlushCount);
                Assert.Equal((total - (total % 4), total % 4), (cache.QuantizedLength, cache.ResidualLength));
                Assert.Single(cache.Blocks);

                // Independently: quantize (old dequantized cache ++ new token) from scratch.
                shadow.Clear();
                shadow.Prefill(cat(new[] { before, nk }, 2), cat(new[] { beforeV, nv }, 2));
                var (sk, sv) = shadow.GetKeysValues();
                var (ck, cv) = cache.GetKeysValues();
                Assert.True(MaxAbsDiff(sk, ck) < 1e-5);
                Assert.True(MaxAbsDiff(sv, cv) < 1e-5);
            }
            else
            {
                Assert.Equal(flushes, cache.FlushCount);
                var (ck, _) = cache.GetKeysValues();
                Assert.Equal(0, MaxAbsDiff(ck.narrow(2, 0, before.shape[2]), before));
                Assert.Equal(0, MaxAbsDiff(ck.narrow(2, before.shape[2], 1), nk));
            }
        }
    }

    [Fact]
    public void Streaming_QuantizesFullBlocksAndLeavesOldBlocksUntouched()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(4);
        var options = CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact) with { MetadataType = ScalarType.Float32 };
        using var cache = new QuantizedKVCache(options);
        var k = randn(1, 2, 10, 16);
        var v = randn(1, 2, 10, 16);
        cache.Prefill(k, v);
        Assert.Equal((8L, 2L), (cache.QuantizedLength, cache.ResidualLength));
        // Tokens pass through the residual, which holds float32 input in fp16 (KVCacheOptions.DefaultResidualType).
        static Tensor Held(Tensor t) => t.to(ScalarType.Float16).to(ScalarType.Float32);
        var allK = new List<Tensor> { Held(k) };
        var allV = new List<Tensor> { Held(v) };

        for (int step = 1; step <= 20; step++)
        {
            var (before, _) = cache.GetKeysValues();
            long quantizedBefore = cache.QuantizedLength;
            var nk = randn(1, 2, 1, 16);
            var nv = randn(1, 2, 1, 16);
            allK.Add(Held(nk));
            allV.Add(Held(nv));
            cache.Append(nk, nv);

            var (after, afterV) = cache.GetKeysValues();
            Assert.Equal(0, MaxAbsDiff(after.narrow(2, 0, quantizedBefore), before.narrow(2, 0, quantizedBefore)));
            if (step % 8 == 6)
            {
                // The residual reached R: its 8 tokens (positions quantizedBefore..+8) became one new block.
                Assert.Equal(quantizedBefore + 8, cache.QuantizedLength);
                Assert.Equal(0, cache.ResidualLength);
                var raw = cat(allK, 2).narrow(2, quantizedBefore, 8);
                var rawV = cat(allV, 2).narrow(2, quantizedBefore, 8);
                using var alone = new QuantizedKVCache(options);
                alone.Prefill(raw, rawV);
                Assert.Equal(0, MaxAbsDiff(after.narrow(2, quantizedBefore, 8), alone.GetKeysValues().Keys));
                Assert.Equal(0, MaxAbsDiff(afterV.narrow(2, quantizedBefore, 8), alone.GetKeysValues().Values));
                Assert.Equal(quantizedBefore, cache.Blocks[^1].Start);
            }
            else
            {
                Assert.Equal(quantizedBefore, cache.QuantizedLength);
            }
        }

        Assert.Equal(new long[] { 8, 8, 8 }, cache.Blocks.Select(b => b.Tokens).ToArray());
        Assert.Equal(2, cache.FlushCount);
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void Attend_MatchesReferenceAttentionOverDequantizedCache_WithGqaAndBatch(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(5);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, profile) with { GroupSize = 8, ResidualLength = 16 });
        cache.Prefill(randn(2, 2, 45, 32), randn(2, 2, 45, 32), randn(2, 45));
        cache.Append(randn(2, 2, 3, 32), randn(2, 2, 3, 32));
        var q = randn(2, 6, 3, 32);

        var output = cache.Attend(q, causal: true);
        var (k, v) = cache.GetKeysValues();

        // Explicit GQA: query head h reads KV head h / 3.
        var manual = ReferenceAttention.Attend(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), causal: true);
        Assert.True(MaxAbsDiff(output, manual) < 1e-5);
        var lastQuery = ReferenceAttention.Attend(q.narrow(2, 2, 1), k, v);
        Assert.True(MaxAbsDiff(output.narrow(2, 2, 1), lastQuery) < 1e-5);
        Assert.True(output.isfinite().all().item<bool>());
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void Presets_ReconstructWithBoundedError(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(6);
        var k = randn(1, 2, 256, 64);
        var v = randn(1, 2, 256, 64);
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, profile));
        cache.Prefill(k, v, randn(256));
        var (kk, vv) = cache.GetKeysValues();

        double ek = RelativeError(kk, k), ev = RelativeError(vv, v);
        Assert.True(ek < 1.0 && ev < 1.0, $"{preset} {profile}: K {ek:F3}, V {ev:F3}");
        if (preset == "fp16")
        {
            // float32 keys held in fp16: rounding only (2^-11 relative at most per element).
            Assert.InRange(ek, 1e-6, 1e-3);
            Assert.InRange(ev, 1e-6, 1e-3);
        }
        else if (preset is "kivi-2" or "vidkv-2")
        {
            Assert.InRange(ek, 0.2, 0.5);
        }
    }

    [Fact]
    public void StpPreset_ProtectsHighestScoringTokens()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(7);
        var scores = cat(new[] { randn(320), full(64, float.NaN) });
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.66"));
        cache.Prefill(randn(1, 2, 384, 64), randn(1, 2, 384, 64), scores);

        var chosen = cache.Blocks[0].Values.ProtectedTokens!;
        Assert.Equal(64, chosen.shape[1]); // floor(0.2 * 320 / 32) * 32
        var expected = Longs(scores.narrow(0, 0, 320).topk(64).indexes).OrderBy(i => i);
        Assert.Equal(expected, Longs(chosen[0]));
    }

    [Fact]
    public void Dispose_FreesEveryHeldTensor()
    {
        var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.66"));
        using (NewDisposeScope())
        {
            cache.Prefill(randn(1, 2, 100, 32), randn(1, 2, 100, 32), randn(100));
        }

        var held = CacheTestData.HeldTensors(cache).ToList();
        Assert.NotEmpty(held);
        Assert.All(held, t => Assert.False(t.IsInvalid, "held tensors outlive the caller's dispose scope"));

        cache.Dispose();

        Assert.All(held, t => Assert.True(t.IsInvalid));
        Assert.Throws<ObjectDisposedException>(() => cache.Append(randn(1, 2, 1, 32), randn(1, 2, 1, 32)));
    }

    [Fact]
    public void BadInputs_AreRejectedWithClearMessages()
    {
        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-2"));
        Assert.Contains("[B, H, N, D]", Assert.Throws<ArgumentException>(() => cache.Prefill(randn(2, 8, 4), randn(2, 8, 4))).Message, StringComparison.Ordinal);
        Assert.Contains("floating point", Assert.Throws<ArgumentException>(() => cache.Prefill(ones(1, 1, 4, 4, ScalarType.Int32), ones(1, 1, 4, 4, ScalarType.Int32))).Message, StringComparison.Ordinal);
        Assert.Contains("agree on B, H and N", Assert.Throws<ArgumentException>(() => cache.Prefill(randn(1, 2, 4, 8), randn(1, 2, 5, 8))).Message, StringComparison.Ordinal);
        Assert.Contains("Importance scores", Assert.Throws<ArgumentException>(() => cache.Prefill(randn(1, 2, 4, 8), randn(1, 2, 4, 8), randn(5))).Message, StringComparison.Ordinal);
        cache.Prefill(randn(1, 2, 40, 8), randn(1, 2, 40, 8));
        Assert.Throws<InvalidOperationException>(() => cache.Prefill(randn(1, 2, 4, 8), randn(1, 2, 4, 8)));
        Assert.Contains("do not match", Assert.Throws<ArgumentException>(() => cache.Append(randn(1, 3, 1, 8), randn(1, 3, 1, 8))).Message, StringComparison.Ordinal);
        Assert.Equal(40, cache.Length);
    }

    [Theory]
    [InlineData(77)] // 13 tokens past the last whole group
    [InlineData(20)] // less than a group: no key is quantized yet
    public void ReferencePerTokenValues_QuantizeEveryPrefillTokensValues_AsTheReleasedCode(int n)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(12);
        var k = randn(1, 2, n, 64).half();
        var v = randn(1, 2, n, 64).half();
        long tail = n % 32;
        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("kivi-2", CacheProfile.Reference));
        cache.Prefill(k, v);

        // The released LM cache: every token's values at 2 bits per token (groups of 32 channels); the last n mod 32
        // tokens' keys in full precision, since per-channel key groups need 32 tokens.
        var perToken = new AsymmetricQuantizer(2, QuantizationAxis.PerToken, 32, ScalarType.Float16);
        using var codes = perToken.Quantize(v);
        var expected = perToken.Dequantize(codes).half();
        var (ck, cv) = cache.GetKeysValues();
        Assert.Equal(tail, cache.ResidualLength);
        Assert.True(cv.eq(expected).all().item<bool>(), "every prefill token's values are read back from per-token codes");
        Assert.True(MaxAbsDiff(cv.narrow(2, n - tail, tail), v.narrow(2, n - tail, tail)) > 0.01, "the tail's values are quantized");
        Assert.Equal(0, MaxAbsDiff(ck.narrow(2, n - tail, tail), k.narrow(2, n - tail, tail)));

        // Per-channel values (vidkv-2) and the Compact profile keep the tail's values exact.
        foreach (var options in new[] { KVCacheOptions.FromPreset("vidkv-2", CacheProfile.Reference), KVCacheOptions.FromPreset("kivi-2", CacheProfile.Compact) })
        {
            using var other = new QuantizedKVCache(options);
            other.Prefill(k, v);
            Assert.Equal(0, MaxAbsDiff(other.GetKeysValues().Values.narrow(2, n - tail, tail), v.narrow(2, n - tail, tail)));
        }

        // Decoding: a new token's values stay exact until the residual reaches R = 128 keys; that flush re-quantizes
        // everything and leaves no residual, as the released code does.
        int steps = 128 - (int)tail;
        for (int i = 0; i < steps; i++)
        {
            var nv = randn(1, 2, 1, 64).half();
            cache.Append(randn(1, 2, 1, 64).half(), nv);
            if (i < steps - 1)
            {
                Assert.Equal(0, MaxAbsDiff(cache.GetKeysValues().Values.narrow(2, n + i, 1), nv));
            }
        }

        Assert.Equal((1, 0L, n + (long)steps), (cache.FlushCount, cache.ResidualLength, cache.QuantizedLength));
    }
}
