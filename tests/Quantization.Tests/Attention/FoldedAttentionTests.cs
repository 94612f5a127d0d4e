using TorchSharp;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Attention;

/// <summary>
/// The folded-heads attention a GPU uses for multi-token queries over a dequantized cache (a question prefilled over a
/// remembered video): the same result as the float32 reference with its per-head copies, causal or not, any scale.
/// </summary>
public sealed class FoldedAttentionTests
{
    [Theory]
    [InlineData(1, 4, 28, 1, 300, false)]
    [InlineData(1, 4, 28, 20, 300, true)]
    [InlineData(2, 2, 6, 7, 45, true)]
    [InlineData(1, 2, 2, 45, 45, true)]
    [InlineData(2, 3, 3, 5, 64, false)]
    public void Folded_MatchesTheReference_ForGqaCausalAndBatch(int batch, int kvHeads, int queryHeads, int tokens, int cached, bool causal)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(tokens + cached);
        var q = randn(batch, queryHeads, tokens, 32);
        var k = randn(batch, kvHeads, cached, 32);
        var v = randn(batch, kvHeads, cached, 24);

        var reference = ReferenceAttention.Attend(q, k, v, causal);
        var folded = ReferenceAttention.AttendFolded(q, k, v, causal);

        Assert.Equal(reference.shape, folded.shape);
        Assert.Equal(ScalarType.Float32, folded.dtype);
        Assert.True(reference.sub(folded).abs().max().item<float>() < 1e-4f);
        if (causal && tokens > 1)
        {
            // The first query token must not see the tokens after it: changing them leaves its output alone.
            var changed = v.clone();
            changed.narrow(2, cached - tokens + 1, tokens - 1).add_(50f);
            var again = ReferenceAttention.AttendFolded(q, k, changed, causal);
            Assert.True(again.narrow(2, 0, 1).sub(folded.narrow(2, 0, 1)).abs().max().item<float>() < 1e-5f);
            Assert.True(again.narrow(2, tokens - 1, 1).sub(folded.narrow(2, tokens - 1, 1)).abs().max().item<float>() > 0.5f);
        }
    }

    [Fact]
    public void Folded_HonoursAScaleAndRuns16Bit()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var q = randn(1, 8, 6, 64);
        var k = randn(1, 2, 100, 64);
        var v = randn(1, 2, 100, 64);

        var scaled = ReferenceAttention.AttendFolded(q, k, v, causal: true, scale: 0.3);
        Assert.True(ReferenceAttention.Attend(q, k, v, causal: true, scale: 0.3).sub(scaled).abs().max().item<float>() < 1e-4f);

        var half = ReferenceAttention.AttendFolded(q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16), causal: true);
        Assert.Equal(ScalarType.Float32, half.dtype);
        Assert.True(ReferenceAttention.Attend(q, k, v, causal: true).sub(half).abs().max().item<float>() < 0.05f);
    }

    [Fact]
    public void Folded_RejectsAQueryThatDoesNotFitTheKeys()
    {
        using var scope = NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => ReferenceAttention.AttendFolded(randn(1, 5, 1, 32), randn(1, 2, 10, 32), randn(1, 2, 10, 32)));
        Assert.Contains("query [1, 5, 1, 32]", error.Message, StringComparison.Ordinal);
    }
}
