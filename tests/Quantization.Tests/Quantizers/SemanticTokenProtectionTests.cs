using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Quantizers;

public sealed class SemanticTokenProtectionTests
{
    [Fact]
    public void Score_IsMeanDotProductWithText()
    {
        using var scope = NewDisposeScope();
        var visual = tensor(new float[] { 1, 0, 0, 2, 1, 1 }).reshape(1, 3, 2);
        var text = tensor(new float[] { 1, 1, 3, -1 }).reshape(1, 2, 2);

        var scores = SemanticTokenProtection.Score(visual, text);

        // token 0: (1 + 3) / 2; token 1: (2 - 2) / 2; token 2: (2 + 2) / 2.
        Close(new[] { 2.0, 0, 2 }, scores, 1e-6);
    }

    [Fact]
    public void SelectProtected_TakesTopFractionOfEligibleTokens_InWholeGroups()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(21);
        // 200 visual tokens then 56 text tokens (NaN): k = floor(0.2 * 200 / 8) * 8 = 40.
        var scores = cat(new[] { randn(2, 200), full(2, 56, float.NaN) }, 1);
        var stp = new SemanticTokenProtection(0.2, 8);

        var chosen = stp.SelectProtected(scores)!;

        Assert.Equal(new long[] { 2, 40 }, chosen.shape);
        for (int b = 0; b < 2; b++)
        {
            var expected = Longs(scores[b].narrow(0, 0, 200).topk(40).indexes).OrderBy(i => i).ToArray();
            Assert.Equal(expected, Longs(chosen[b]));
        }
    }

    [Fact]
    public void SelectProtected_TooFewEligible_ProtectsNothing()
    {
        using var scope = NewDisposeScope();
        var scores = cat(new[] { randn(1, 10), full(1, 100, float.NaN) }, 1);
        Assert.Null(new SemanticTokenProtection(0.2, 32).SelectProtected(scores));
    }

    [Fact]
    public void ValueQuantizer_ProtectedTokensGetTwoBitValues_RestTernary()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(22);
        var values = randn(1, 2, 160, 16);
        var scores = cat(new[] { randn(1, 128), full(1, 32, float.NaN) }, 1);
        var asym = new AsymmetricQuantizer(2, QuantizationAxis.PerChannel, 8, ScalarType.Float32);
        var ternary = new TernaryQuantizer(QuantizationAxis.PerChannel, 8);
        var quantizer = new ValueQuantizer(ternary, asym, new SemanticTokenProtection(0.25, 8));

        using var q = quantizer.Quantize(values, scores);
        var deq = quantizer.Dequantize(q);

        var chosen = q.ProtectedTokens!;
        Assert.Equal(32, chosen.shape[1]);
        Assert.All(Longs(chosen), i => Assert.True(i < 128));
        var index = chosen.reshape(1, 1, 32, 1).expand(1, 2, 32, 16);
        Assert.Equal(0, MaxAbsDiff(deq.gather(2, index), asym.Dequantize(q.Protected!)));
        var restMask = ones(160, ScalarType.Bool);
        restMask.index_fill_(0, chosen[0], false);
        var rest = deq.index_select(2, restMask.nonzero().reshape(-1));
        Assert.Equal(0, MaxAbsDiff(rest, ternary.Dequantize(q.Rest)));
        Assert.True(RelativeError(deq.gather(2, index), values.gather(2, index)) < RelativeError(rest, values.index_select(2, restMask.nonzero().reshape(-1))));
    }
}
