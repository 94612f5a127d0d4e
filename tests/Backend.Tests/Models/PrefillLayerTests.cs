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
