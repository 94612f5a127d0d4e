using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.LlavaOnevision;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

public sealed class ModelCreateSaveTrainTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-model-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static LlavaOnevisionConfig TinyConfig() => LlavaOnevisionConfig.Load(Fixtures.Model);

    [Fact]
    public void Create_IsReproducibleFromTheSeed()
    {
        using var a = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 5);
        using var b = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 5);
        using var c = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 6);

        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pc = c.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in a.named_parameters())
        {
            Assert.True(p.eq(pb[name]).all().item<bool>(), name);
        }

        Assert.False(a.named_parameters().First(p => p.name.EndsWith("q_proj.weight", StringComparison.Ordinal)).parameter.eq(pc["language_model.layers.0.self_attn.q_proj.weight"]).all().item<bool>());
    }

    [Fact]
    public void SaveThenLoad_GivesTheSameModel()
    {
        using var scope = NewDisposeScope();
        using var model = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 1);
        model.Save(_temp);
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "processor_config.json" })
        {
            File.Copy(Path.Combine(Fixtures.Model, file), Path.Combine(_temp, file));
        }

        using var loaded = LlavaOnevisionModel.Load(_temp);

        var ids = tensor(new long[] { 481, 20, 30, 40 }).reshape(1, 4);
        var expected = model.Logits(model.Forward(new DecoderInput(model.Embed(ids))));
        var actual = loaded.Logits(loaded.Forward(new DecoderInput(loaded.Embed(ids))));
        Assert.Equal(0, (expected - actual).abs().max().item<float>());
        Assert.Equal(model.Config.Text with { EosTokenIds = Array.Empty<int>() }, loaded.Config.Text with { EosTokenIds = Array.Empty<int>() });
        Assert.Equal(model.Config.Vision, loaded.Config.Vision);
        Assert.Equal(model.Config.ImageGridPinpoints, loaded.Config.ImageGridPinpoints);
        Assert.Equal(model.Config.Text.EosTokenIds, loaded.Config.Text.EosTokenIds);
    }

    [Fact]
    public void EncodeVideoBatch_GivesEachVideosFeaturesInOrder_AsEncodingThemOneByOne()
    {
        using var scope = NewDisposeScope();
        using var model = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 3);
        int side = model.Config.Vision.ImageSize;
        var a = randn(2, 3, side, side, generator: new Generator(1));
        var b = randn(3, 3, side, side, generator: new Generator(2));

        var (pooled, rows) = model.EncodeVideoBatch(cat(new[] { a, b }, 0), [2, 3]);

        var expected = cat(new[] { model.EncodeVideo(a), model.EncodeVideo(b) }, 0);
        Assert.Equal(expected.shape, rows.shape);
        Assert.True(rows.allclose(expected, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(5, pooled.shape[0]);
        Assert.Equal(rows.shape[0] - 2, pooled.shape[0] * pooled.shape[1]);
        var ex = Assert.Throws<ArgumentException>(() => model.EncodeVideoBatch(cat(new[] { a, b }, 0), [2, 2]));
        Assert.Contains("framesPerVideo", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AdamWSteps_ThroughVisionAndDecoder_LowerTheLoss()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(0);
        using var model = LlavaOnevisionModel.Create(TinyConfig(), null, seed: 2);
        model.SetTrainable(true);
        using var optimizer = optim.AdamW(model.parameters(), lr: 3e-3);
        var config = model.Config;
        int perFrame = config.VideoTokensPerFrame * 2 + 1;
        var ids = cat(new[] { tensor(new long[] { 481, 10 }), full(perFrame, config.VideoTokenId, ScalarType.Int64), tensor(new long[] { 11, 12, 13, 14, 15 }) }).reshape(1, -1);
        var pixels = randn(2, 3, 70, 70);
        var targets = ids.narrow(1, 1, ids.shape[1] - 1).reshape(-1);

        double Step()
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var embeds = model.MergeVisual(ids, model.Embed(ids), model.EncodeVideo(pixels), null);
            var logits = model.Logits(model.Forward(new DecoderInput(embeds))).narrow(1, 0, ids.shape[1] - 1).reshape(-1, config.Text.VocabSize);
            // Learn only the text after the video.
            var mask = targets.ne(config.VideoTokenId);
            var loss = nn.functional.cross_entropy(logits[mask], targets[mask]);
            loss.backward();
            optimizer.step();
            return loss.item<float>();
        }

        double first = Step();
        double last = first;
        for (int i = 0; i < 15; i++)
        {
            last = Step();
        }

        Assert.True(last < first * 0.5, $"loss went from {first} to {last}");
        var projector = model.named_parameters().First(p => p.name == "multi_modal_projector.linear_1.weight").parameter;
        Assert.NotNull(projector.grad);
        Assert.True(projector.grad!.abs().sum().item<float>() > 0, "gradients reach the vision side");
    }
}
