using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// Grouped-query attention without copying keys and values per query head computes what attention over repeated keys
/// and values does.
/// </summary>
public sealed class PrefillLayerTests
{
    [Theory]
    [InlineData(6, 2, true)]
    [InlineData(6, 2, false)]
    [InlineData(4, 1, true)]
    [InlineData(3, 3, true)]
    public void GroupedAttention_EqualsAttentionOverRepeatedKeysAndValues(int heads, int kvHeads, bool causal)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(3);
        var q = randn(new long[] { 2, 7, heads, 8 }, generator: g).transpose(1, 2); // a strided view, as the model's queries are
        var k = randn(new long[] { 2, kvHeads, 7, 8 }, generator: g);
        var v = randn(new long[] { 2, kvHeads, 7, 8 }, generator: g);
        int groups = heads / kvHeads;

        var expected = nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1), null, 0.0, causal);
        var actual = Attention.GroupedAttention(q, k, v, causal);

        Assert.Equal(expected.shape, actual.shape);
        Assert.True(allclose(expected, actual, 1e-5, 1e-6), $"max difference {(expected - actual).abs().max().item<float>()}");
    }
}

/// <summary>
/// The CPU's blocked bf16 prefill attention (two products and a float32 softmax per block of query rows) against float32
/// attention over repeated keys and values: as close as transformers' eager bf16 attention over the whole input is.
/// </summary>
public sealed class CpuPrefillAttentionTests
{
    [Theory]
    [InlineData(14, 2, 600, 600, true)]   // several blocks, the decoder's grouping
    [InlineData(14, 2, 300, 700, true)]   // queries after a cached prefix: the last query sees every key
    [InlineData(16, 16, 729, 729, false)] // a vision frame
    [InlineData(4, 1, 2, 2, true)]
    public void BlockedAttention_IsAsCloseToFloat32AsEagerBf16Attention(int heads, int kvHeads, int queries, int keys, bool causal)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var q = (randn(new long[] { 2, queries, heads, 64 }, generator: g) * 2).transpose(1, 2).to(ScalarType.BFloat16);
        var k = (randn(new long[] { 2, kvHeads, keys, 64 }, generator: g) * 2).to(ScalarType.BFloat16);
        var v = randn(new long[] { 2, kvHeads, keys, 64 }, generator: g).to(ScalarType.BFloat16);
        int groups = heads / kvHeads;
        var kr = k.repeat_interleave(groups, 1);
        var vr = v.repeat_interleave(groups, 1);

        // float32 reference; a causal query block shorter than the keys ends at the last key (explicit mask).
        var mask = ones(queries, keys, dtype: ScalarType.Bool).tril(keys - queries);
        var expected = nn.functional.scaled_dot_product_attention(q.to(ScalarType.Float32), kr.to(ScalarType.Float32), vr.to(ScalarType.Float32), causal ? mask : null);
        var libtorch = nn.functional.scaled_dot_product_attention(q, kr, vr, causal ? mask : null);

        Assert.True(CpuPrefillAttention.Applies(q, k));
        var actual = CpuPrefillAttention.Attend(q, k, v, causal);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);

        // transformers' eager bf16 attention over the whole input at once: bf16 scores, float32 softmax, bf16 probabilities.
        var scores = matmul(q.mul(1.0 / 8), kr.transpose(2, 3));
        if (causal)
        {
            scores = scores.masked_fill(mask.logical_not(), float.NegativeInfinity);
        }

        var eager = matmul(scores.softmax(-1, ScalarType.Float32).to(ScalarType.BFloat16), vr);

        double Error(Tensor x) => ((x.to(ScalarType.Float32) - expected).norm() / expected.norm()).item<float>();
        double ours = Error(actual), theirs = Error(libtorch), eagerError = Error(eager);
        Assert.True(ours < Math.Max(1.25 * eagerError, 2e-3), $"blocked bf16 attention relative error {ours:E2}, eager bf16 {eagerError:E2}, libtorch bf16 {theirs:E2}");
        Assert.True(ours < 1.5e-2, $"blocked bf16 attention relative error {ours:E2}");
        Assert.True(Attention.GroupedAttention(q, k, v, causal).eq(actual).all().item<bool>(), "GroupedAttention takes the blocked path for bf16 CPU queries");
    }

    [Fact]
    public void Float32AndSingleQueriesKeepLibtorchsAttention()
    {
        using var scope = NewDisposeScope();
        Assert.False(CpuPrefillAttention.Applies(zeros(1, 2, 5, 8), zeros(1, 2, 5, 8)));
        Assert.False(CpuPrefillAttention.Applies(zeros(1, 2, 1, 8, dtype: ScalarType.BFloat16), zeros(1, 2, 5, 8, dtype: ScalarType.BFloat16)));
    }
}
