using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// The prefill's shortcuts compute what the plain forms do: grouped-query attention without copying keys and values per
/// query head, the MLP of a long input in chunks of rows, the vision tower a few images at a time.
/// </summary>
public sealed class PrefillLayerTests : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _f;

    public PrefillLayerTests(TinyModelFixture fixture) => _f = fixture;

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

    [Fact]
    public void GatedMlp_OfALongInputInChunks_EqualsTheProductsOverAllRows()
    {
        using var scope = NewDisposeScope();
        using var mlp = new GatedMlp(8, 12, false, ScalarType.Float32, CPU);
        var g = new Generator(4);
        foreach (var (_, p) in mlp.named_parameters())
        {
            using var noGrad = no_grad();
            p.copy_(randn(p.shape, generator: g));
        }

        var parameters = mlp.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        long rows = (2 * GatedMlp.ChunkRows) + 37; // two whole chunks and a short one
        var x = randn(new long[] { 1, rows, 8 }, generator: g);

        var expected = nn.functional.linear(nn.functional.silu(nn.functional.linear(x, parameters["gate_proj.weight"])) * nn.functional.linear(x, parameters["up_proj.weight"]), parameters["down_proj.weight"]);
        var actual = mlp.forward(x);

        Assert.Equal(new long[] { 1, rows, 8 }, actual.shape);
        Assert.True(allclose(expected, actual, 1e-5, 1e-5), $"max difference {(expected - actual).abs().max().item<float>()}");
    }

    [Fact]
    public void VisionTower_AFewImagesAtATime_EqualsAllImagesInOnePass()
    {
        using var scope = NewDisposeScope();
        var pixels = _f.Ref("video.pixel_values")[0];
        Assert.True(pixels.shape[0] > 1, "the fixture video needs several frames");

        var whole = _f.Model.VisionFeatures(pixels, long.MaxValue);
        var oneByOne = _f.Model.VisionFeatures(pixels, 1);

        Assert.Equal(whole.shape, oneByOne.shape);
        Assert.True(allclose(whole, oneByOne, 1e-5, 1e-5), $"max difference {(whole - oneByOne).abs().max().item<float>()}");
    }
}
