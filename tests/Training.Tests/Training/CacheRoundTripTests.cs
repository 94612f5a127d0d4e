using VidKV.AI.Backend.Models;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Training.Tests;

public sealed class CacheRoundTripTests
{
    [Theory]
    [InlineData(CacheProfile.Reference)]
    [InlineData(CacheProfile.Compact)]
    public void Apply_GivesWhatTheCacheGivesBack_WithTheGradientPassedStraightThrough(CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        var options = KVCacheOptions.FromPreset("vidkv-1.5/1.58", profile);
        var trip = new CacheRoundTrip(options);
        var generator = new TorchSharp.torch.Generator(11);
        var keys = randn([2, 2, 70, 64], generator: generator).requires_grad_(true);
        var values = randn([2, 2, 70, 64], generator: generator).requires_grad_(true);

        var (k, v) = trip.Apply(0, keys, values);

        using var cache = new QuantizedKVCache(options);
        cache.Prefill(keys.detach(), values.detach());
        var (expectedKeys, expectedValues) = cache.GetKeysValues();
        Assert.True(k.detach().allclose(expectedKeys.to(k.dtype), rtol: 1e-5, atol: 1e-5), "keys differ from the cache's reconstruction");
        Assert.True(v.detach().allclose(expectedValues.to(v.dtype), rtol: 1e-5, atol: 1e-5), "values differ from the cache's reconstruction");

        // Quantized where the cache quantizes (64 whole-group tokens of 70), held in fp16 in the residual (the last 6:
        // float32 input, KVCacheOptions.DefaultResidualType).
        Assert.False(v.detach().narrow(2, 0, 64).allclose(values.detach().narrow(2, 0, 64)));
        Assert.True(v.detach().narrow(2, 64, 6).eq(values.detach().narrow(2, 64, 6).to(ScalarType.Float16).to(ScalarType.Float32)).all().item<bool>());
        Assert.True(k.detach().narrow(2, 64, 6).eq(keys.detach().narrow(2, 64, 6).to(ScalarType.Float16).to(ScalarType.Float32)).all().item<bool>());

        var wk = randn(keys.shape, generator: generator);
        var wv = randn(values.shape, generator: generator);
        (k * wk + v * wv).sum().backward();
        Assert.True(keys.grad!.allclose(wk), "the keys' gradient is not passed straight through");
        Assert.True(values.grad!.allclose(wv), "the values' gradient is not passed straight through");
    }

    [Fact]
    public void AnUnquantizedPreset_IsRejectedByName()
    {
        var ex = Assert.Throws<ArgumentException>(() => new CacheRoundTrip(KVCacheOptions.FromPreset("fp16")));
        Assert.Contains("'fp16'", ex.Message, StringComparison.Ordinal);
    }
}

public sealed class CacheInTheLoopForwardTests
{
    [Fact]
    public void TransformedQueries_ChooseWhichRowsReadTheCache_TheOthersAreExactlyTheModelsOwn()
    {
        using var model = VidKV.AI.Backend.Models.LlavaOnevision.LlavaOnevisionModel.Create(
            VidKV.AI.Backend.Models.LlavaOnevision.LlavaOnevisionConfig.Load(Fixtures.Model), null, seed: 3);
        using var scope = NewDisposeScope();
        var trip = new CacheRoundTrip(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact));
        long t = 70, d = model.Config.Text.HiddenSize;
        var embeds = randn([2, t, d], generator: new TorchSharp.torch.Generator(4));
        DecoderInput Input(Tensor? mask = null) => new(embeds) { Hook = new TrainingHook(trip, mask, keepLayerOutputs: false) };
        var plain = model.Forward(new DecoderInput(embeds));
        var all = model.Forward(Input());

        // No row marked: the model's own forward; every row marked: the same as no mask.
        var none = model.Forward(Input(zeros([2, t], ScalarType.Bool)));
        Assert.True(none.allclose(plain, rtol: 1e-5, atol: 1e-5));
        var every = model.Forward(Input(ones([2, t], ScalarType.Bool)));
        Assert.True(every.allclose(all, rtol: 1e-5, atol: 1e-5));
        Assert.False(all.allclose(plain, rtol: 1e-3, atol: 1e-3), "the cache's round trip changed nothing");

        // The last 5 rows marked: the rows before them are untouched (causal), the marked ones read the cache.
        var mask = zeros([2, t], ScalarType.Bool);
        mask.narrow(1, t - 5, 5).fill_(true);
        var tail = model.Forward(Input(mask));
        Assert.True(tail.narrow(1, 0, t - 5).allclose(plain.narrow(1, 0, t - 5), rtol: 1e-5, atol: 1e-5));
        Assert.False(tail.narrow(1, t - 5, 5).allclose(plain.narrow(1, t - 5, 5), rtol: 1e-3, atol: 1e-3));

        var ex = Assert.Throws<ArgumentException>(() => model.Forward(Input(ones([2, t - 1], ScalarType.Bool))));
        Assert.Contains("QueryMask", ex.Message, StringComparison.Ordinal);
    }
}
