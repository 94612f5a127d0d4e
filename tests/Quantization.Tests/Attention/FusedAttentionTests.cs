using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using VidKV.AI.Quantization.Tests.Cache;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Attention;

public sealed class FusedAttentionTests
{
    // Fused and reference attention sum the same products in different orders, in float32.
    private const double Tolerance = 2e-5;

    public static TheoryData<string, CacheProfile> AllPresets() => QuantizedKVCacheTests.AllPresets();

    public static TheoryData<string> Variants() => new() { "per-token values", "scaled ternary", "±s signs", "4-bit outliers and values", "bf16 metadata", "float32 metadata" };

    private static IEnumerable<FusedKernelPath> Paths()
        => new[] { FusedKernelPath.Portable, FusedKernelPath.Avx2, FusedKernelPath.Avx512 }.Where(FusedAttention.IsSupported);

    /// <summary>
    /// Fills a cache with a prompt of <paramref name="prompt"/> tokens and <paramref name="steps"/> decode steps of random
    /// data (batch 2, 2 KV heads), then checks the fused output against dequantize-then-attend for decode and causal
    /// multi-token queries with 3 query heads per KV head, on every kernel path this processor runs. Inputs are float32,
    /// so that the reference dequantizes to float32 too (with fp16 inputs it rounds the rebuilt cache to fp16, the
    /// fused path does not); <see cref="KVCacheOptions.ResidualType"/> sets how the residual is stored.
    /// </summary>
    private static void CheckEquivalent(KVCacheOptions options, int prompt, int steps, int dim, int seed = 0, int queryHeads = 6)
    {
        const ScalarType type = ScalarType.Float32;
        using var scope = NewDisposeScope();
        random.manual_seed(seed);
        using var cache = new QuantizedKVCache(options);
        // A large per-channel offset on a few channels, as post-RoPE keys have: the outlier split matters.
        var offset = zeros(dim);
        offset[0] = 6f;
        offset[dim / 2] = -4f;
        cache.Prefill(((randn(2, 2, prompt, dim) * 2) + offset).to(type), randn(2, 2, prompt, dim).to(type), randn(2, prompt));
        for (int i = 0; i < steps; i++)
        {
            cache.Append(((randn(2, 2, 1, dim) * 2) + offset).to(type), randn(2, 2, 1, dim).to(type));
        }

        foreach (var (tq, causal) in new[] { (1, false), (3, true), (2, false) })
        {
            var query = randn(2, queryHeads, tq, dim) * 0.7;
            var expected = cache.Attend(query, causal);
            foreach (var path in Paths())
            {
                var actual = cache.AttendFused(query, causal, path: path);
                Assert.Equal(ScalarType.Float32, actual.dtype);
                Assert.Equal(expected.shape, actual.shape);
                double err = MaxAbsDiff(actual, expected);
                Assert.True(err <= Tolerance, $"{options.Preset} {options.Profile} {path} Tq={tq} causal={causal}: max |fused - reference| = {err:E2}");
            }

            // The TorchSharp path (what runs on a GPU), on CPU tensors, in runs of 2 groups and of 64 tokens.
            foreach (int chunk in new[] { 2 * options.GroupSize, 64 })
            {
                var chunked = ChunkedFusedAttention.Attend(cache, query, causal, 1.0 / Math.Sqrt(dim), chunk);
                Assert.Equal(expected.shape, chunked.shape);
                double err = MaxAbsDiff(chunked, expected);
                Assert.True(err <= Tolerance, $"{options.Preset} {options.Profile} chunked ({chunk} tokens) Tq={tq} causal={causal}: max |fused - reference| = {err:E2}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void EveryPreset_EqualsDequantizeThenAttend(string preset, CacheProfile profile)
    {
        // G = 4, R = 8: 61 prompt tokens + 13 decode steps flush several times; 74 tokens in all, 2 in the residual or more.
        CheckEquivalent(CacheTestData.Small(preset, profile), prompt: 61, steps: 13, dim: 16);
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void EveryPreset_AcrossSoftmaxChunks_EqualsDequantizeThenAttend(string preset, CacheProfile profile)
    {
        // Longer than one 256-token chunk, with the real group size and an fp16 residual: the online softmax merges
        // chunks, protected groups straddle chunk boundaries.
        CheckEquivalent(KVCacheOptions.FromPreset(preset, profile) with { ResidualType = ScalarType.Float16 }, prompt: 581, steps: 3, dim: 32, seed: 1);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Variant_EqualsDequantizeThenAttend(string variant)
    {
        foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.5/1.66", "kivi-2" })
        {
            foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
            {
                var o = CacheTestData.Small(preset, profile);
                o = variant switch
                {
                    "per-token values" => o with { ValueAxis = QuantizationAxis.PerToken },
                    "scaled ternary" => o with { ScaledTernary = true },
                    "±s signs" => o with { SignReconstruction = SignReconstruction.PlusMinusScale },
                    "4-bit outliers and values" => o with { OutlierBits = 4, ValueBits = 4 },
                    "bf16 metadata" => o with { MetadataType = ScalarType.BFloat16, ResidualType = ScalarType.BFloat16 },
                    _ => o with { MetadataType = ScalarType.Float32 },
                };
                CheckEquivalent(o, prompt: 45, steps: 9, dim: 16, seed: 2);
            }
        }
    }

    [Theory]
    [InlineData(18, 1.5)]
    [InlineData(20, 1.25)]
    [InlineData(23, 1.75)]
    [InlineData(16, 1.0)]
    [InlineData(16, 2.0)]
    public void OddAndEvenEasyChannelCounts_EqualDequantizeThenAttend(int dim, double keyBits)
    {
        foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
        {
            var o = CacheTestData.Small("vidkv-1.5/1.58", profile) with { KeyBits = keyBits };
            CheckEquivalent(o, prompt: 37, steps: 2, dim: dim, seed: 3);
        }
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void SevenQueryHeadsPerKvHead_HeadDim128_EqualsDequantizeThenAttend(string preset, CacheProfile profile)
    {
        // LLaVA-OneVision's and Qwen2.5-VL's 7 query heads per KV head and head dim 128, over more than one softmax chunk:
        // the decode query takes the AVX-512 kernels that score straight from the packed key codes and read trit values
        // in digit planes where the preset fits them; the causal multi-token queries take the general ones.
        CheckEquivalent(KVCacheOptions.FromPreset(preset, profile) with { ResidualType = ScalarType.Float16 }, prompt: 581, steps: 3, dim: 128, seed: 5, queryHeads: 14);
        CheckEquivalent(KVCacheOptions.FromPreset(preset, profile) with { SignReconstruction = SignReconstruction.PlusMinusScale }, prompt: 300, steps: 1, dim: 128, seed: 6, queryHeads: 14);
    }

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void SevenQueryHeadsPerKvHead_HeadDim64_EqualsDequantizeThenAttend(string preset, CacheProfile profile)
    {
        // LLaVA-OneVision-0.5B's geometry (head dim 64): 1-bit rows of 4 bytes, one 32-bit word a row.
        CheckEquivalent(KVCacheOptions.FromPreset(preset, profile) with { ResidualType = ScalarType.Float16 }, prompt: 581, steps: 3, dim: 64, seed: 7, queryHeads: 14);
    }

    [Fact]
    public void LlavaHeadGeometry_EqualsDequantizeThenAttend()
    {
        // Head dim 128 and 7 query heads per KV head, as LLaVA-OneVision-7B; 300 cached tokens.
        using var scope = NewDisposeScope();
        random.manual_seed(4);
        foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.5/1.66" })
        {
            using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { ResidualType = ScalarType.Float16 });
            cache.Prefill(randn(1, 2, 300, 128), randn(1, 2, 300, 128), randn(300));
            var query = randn(1, 14, 1, 128);
            var expected = cache.Attend(query);
            foreach (var path in Paths())
            {
                double err = MaxAbsDiff(cache.AttendFused(query, path: path), expected);
                Assert.True(err <= Tolerance, $"{preset} {path}: {err:E2}");
            }
        }
    }

    [Theory]
    [InlineData(OneBitKeyMode.Fft, 8)]
    [InlineData(OneBitKeyMode.Fft, 7)]
    [InlineData(OneBitKeyMode.Rfft, 8)]
    [InlineData(OneBitKeyMode.Rfft, 9)]
    [InlineData(OneBitKeyMode.TimeDomain, 5)]
    public unsafe void EasyWeights_AreTheAdjointOfTheInverseTransform(OneBitKeyMode mode, int channels)
    {
        // q · FromComponents(c) must equal Σ w_c c_c for any components c: the query is transformed, the keys are not.
        using var scope = NewDisposeScope();
        random.manual_seed(5);
        var q = randn(channels, ScalarType.Float64);
        long count = OneBitKeyQuantizer.ComponentCount(mode, channels);
        var w = new float[count];
        fixed (float* p = w)
        {
            CpuFusedAttention.EasyWeights(q.data<double>().ToArray(), mode, p);
        }

        for (int trial = 0; trial < 4; trial++)
        {
            var c = randn(1, count, ScalarType.Float64);
            double expected = (OneBitKeyQuantizer.FromComponents(c, mode, channels).reshape(-1) * q).sum().item<double>();
            double actual = (c.reshape(-1) * tensor(w).to(ScalarType.Float64)).sum().item<double>();
            Assert.True(Math.Abs(expected - actual) < 1e-5 * (1 + Math.Abs(expected)), $"{mode} De={channels}: {expected} vs {actual}");
        }
    }

    [Fact]
    public void BadInput_IsRejectedWithAClearMessage()
    {
        using var scope = NewDisposeScope();
        using var cache = new QuantizedKVCache(CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Compact));
        Assert.Throws<InvalidOperationException>(() => cache.AttendFused(randn(1, 2, 1, 16)));

        cache.Prefill(randn(1, 2, 20, 16), randn(1, 2, 20, 16));
        var heads = Assert.Throws<ArgumentException>(() => cache.AttendFused(randn(1, 3, 1, 16)));
        Assert.Contains("multiple of 2 heads", heads.Message, StringComparison.Ordinal);
        var dim = Assert.Throws<ArgumentException>(() => cache.AttendFused(randn(1, 2, 1, 8)));
        Assert.Contains("D=16", dim.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => cache.AttendFused(randn(2, 2, 1, 16)));
        Assert.Throws<ArgumentException>(() => cache.AttendFused(randn(1, 2, 16)));
        Assert.Throws<ArgumentException>(() => cache.AttendFused(ones(1, 2, 1, 16, ScalarType.Int32)));
        var causal = Assert.Throws<ArgumentException>(() => cache.AttendFused(randn(1, 2, 21, 16), causal: true));
        Assert.Contains("21 tokens", causal.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.AttendFused(randn(1, 2, 1, 16), path: (FusedKernelPath)42));
    }

    [Fact]
    public void AutoPath_IsTheWidestSupportedOne()
    {
        var widest = Paths().Last();
        Assert.Equal(widest, FusedAttention.AutoPath);
        Assert.True(FusedAttention.IsSupported(FusedKernelPath.Portable));
    }
}
