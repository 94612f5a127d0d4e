using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Qwen25VL;
using VidKV.AI.Quantization.Cache;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// Qwen2.5-VL and Qwen2-VL in TorchSharp against transformers 5.17 on the tiny random-weight checkpoints (fp32): the
/// processors' pixels, the chat template and token layout, the 3-D position ids, the vision features, every decoder
/// layer, the logits and greedy decoding with and without the cache, for an image, a video and a conversation with both.
/// </summary>
public sealed class Qwen25VLParityTests : IClassFixture<QwenTinyFixture>
{
    // The parity checks keep the unquantized cache in float32, as transformers does (the library's default residual is 16-bit).
    private static KVCacheOptions FullPrecision => KVCacheOptions.FromPreset("fp16") with { ResidualType = ScalarType.Float32 };

    private const double Tolerance = 1e-4;
    private readonly QwenTinyFixture _f;
    private readonly ITestOutputHelper _output;

    public Qwen25VLParityTests(QwenTinyFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    public static TheoryData<string, string> FamiliesAndCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var family in QwenTinyFixture.Families)
        {
            foreach (var name in QwenTinyFixture.Cases)
            {
                data.Add(family, name);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(FamiliesAndCases))]
    public void Layout_RendersAndExpandsAsTheProcessor(string family, string name)
    {
        using var scope = NewDisposeScope();
        var vlm = _f.Model(family);
        var request = _f.Request(family, name);

        Assert.Equal(_f.Meta(family).GetProperty("renderings").GetProperty(name).GetString(), QwenChatTemplate.Render(request.Turns));
        var layout = vlm.Layout(request);
        Assert.Equal(_f.Ref(family, $"{name}.input_ids").data<long>().Select(i => (int)i), layout.Ids);
        int videoTokens = layout.Ids.Count(i => i == vlm.Model.Config.VideoTokenId);
        Assert.Equal(videoTokens, layout.VideoTokens);
        Assert.Equal(videoTokens, layout.VideoSpans.Sum(s => s.Length));
    }

    [Theory]
    [InlineData("video", "pixel_values_videos", "video_grid_thw", "video0")]
    [InlineData("image", "pixel_values", "image_grid_thw", "image0")]
    [InlineData("mixed", "pixel_values", "image_grid_thw", "image0")]
    [InlineData("mixed", "pixel_values_videos", "video_grid_thw", "video0")]
    public void Preprocessing_GivesTheProcessorsPatchesAndGrid(string name, string pixels, string grid, string raw)
    {
        using var scope = NewDisposeScope();
        var pre = _f.Model("qwen2_5_vl").Preprocessor;
        var input = _f.Ref("qwen2_5_vl", $"{name}.{raw}.raw");

        var frames = raw.StartsWith("video", StringComparison.Ordinal) ? pre.PreprocessFrames(input) : pre.PreprocessImage(input);
        var (patches, g) = pre.Patchify(frames);

        var expectedGrid = _f.Ref("qwen2_5_vl", $"{name}.{grid}").data<long>().ToArray();
        Assert.Equal(expectedGrid, new long[] { g.T, g.H, g.W });
        AssertClose(_f.Ref("qwen2_5_vl", $"{name}.{pixels}"), patches, $"{name} {pixels}", 1e-5);
    }

    [Fact]
    public void SmartResize_MatchesTransformersForManySizes()
    {
        int checkedCount = 0;
        foreach (var c in _f.Meta("qwen2_5_vl").GetProperty("smart_resize").EnumerateArray())
        {
            int h = c.GetProperty("height").GetInt32(), w = c.GetProperty("width").GetInt32();
            long lo = c.GetProperty("min_pixels").GetInt64(), hi = c.GetProperty("max_pixels").GetInt64();
            if (c.TryGetProperty("error", out _))
            {
                Assert.Throws<ArgumentException>(() => QwenVisionPreprocessor.SmartResize(h, w, 28, lo, hi));
                continue;
            }

            var expected = c.GetProperty("out").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var (rh, rw) = QwenVisionPreprocessor.SmartResize(h, w, 28, lo, hi);
            Assert.True(expected[0] == rh && expected[1] == rw, $"{h}x{w} in [{lo}, {hi}]: expected {expected[0]}x{expected[1]}, got {rh}x{rw}");
            checkedCount++;
        }

        Assert.True(checkedCount >= 40, $"only {checkedCount} sizes were checked");
    }

    [Fact]
    public void SampledFrameCount_MatchesTheVideoProcessor()
    {
        var pre = _f.Model("qwen2_5_vl").Preprocessor;
        Assert.Equal((2.0, 4, 40), (pre.Video.Fps, pre.Video.MinFrames, pre.Video.MaxFrames));
        foreach (var c in _f.Meta("qwen2_5_vl").GetProperty("sampling").EnumerateArray())
        {
            long total = c.GetProperty("total").GetInt64();
            double fps = c.GetProperty("video_fps").GetDouble();
            int expected = c.GetProperty("indices").GetArrayLength();
            Assert.True(expected == pre.SampledFrameCount(total, fps), $"{total} frames at {fps} fps: expected {expected} frames, got {pre.SampledFrameCount(total, fps)}");
        }
    }

    [Theory]
    [MemberData(nameof(FamiliesAndCases))]
    public void PositionIds_EqualGetRopeIndex(string family, string name)
    {
        using var scope = NewDisposeScope();
        var vlm = _f.Model(family);

        var (positions, next) = vlm.PositionIds(_f.Request(family, name));

        var expected = _f.Ref(family, $"{name}.position_ids")[.., 0];
        Assert.Equal(expected.shape, positions.shape);
        Assert.True(expected.eq(positions).all().item<bool>(), $"{family} {name}: position ids differ from transformers'");
        long delta = _f.Ref(family, $"{name}.rope_deltas").item<long>();
        Assert.Equal(expected.shape[1] + delta, next);
    }

    [Fact]
    public void PositionIds_VideoTimeAdvancesWithWholeSecondsPerTemporalPatch()
    {
        // transformers 5.17: a video's time axis advances tokens_per_second * int(second_per_grid_t) per temporal patch;
        // after it the text continues max(rows, columns) further. Frames at 1 fps: 2 s per temporal patch, 2 tokens/s.
        using var scope = NewDisposeScope();
        var config = _f.Model("qwen2_5_vl").Model.Config;
        int v = config.VideoTokenId;
        var ids = new List<int> { 1, 2 };
        ids.AddRange(Enumerable.Repeat(v, 3 * 2 * 1)); // grid 3 x 4 x 2 patches -> 3 x 2 x 1 tokens
        ids.Add(3);

        var (positions, next) = MultimodalPositions.Compute(ids, config, [new VisualInput(true, new VisionGrid(3, 4, 2), 2.0)]);

        long[] t = [0, 1, 2, 2, 6, 6, 10, 10, 4];
        long[] h = [0, 1, 2, 3, 2, 3, 2, 3, 4];
        long[] w = [0, 1, 2, 2, 2, 2, 2, 2, 4];
        Assert.Equal(t, positions[0].data<long>().ToArray());
        Assert.Equal(h, positions[1].data<long>().ToArray());
        Assert.Equal(w, positions[2].data<long>().ToArray());
        Assert.Equal(11, next);

        // Qwen2-VL's rule (and images): one step per temporal patch.
        var qwen2 = config with { Vision = config.Vision with { Qwen25 = false } };
        var (p2, _) = MultimodalPositions.Compute(ids, qwen2, [new VisualInput(true, new VisionGrid(3, 4, 2), 2.0)]);
        Assert.Equal(new long[] { 0, 1, 2, 2, 3, 3, 4, 4, 4 }, p2[0].data<long>().ToArray());
    }

    [Theory]
    [MemberData(nameof(FamiliesAndCases))]
    public void VisionFeaturesLayersAndLogits_MatchTransformers(string family, string name)
    {
        using var scope = NewDisposeScope();
        var vlm = _f.Model(family);
        var request = _f.Request(family, name);
        var media = vlm.Decode(request, CancellationToken.None);
        var layout = vlm.Layout(request, media);

        foreach (var (inputs, key) in new[] { (media.Videos, "pixel_values_videos"), (media.Images, "pixel_values") })
        {
            if (inputs.Count == 0)
            {
                continue;
            }

            var (patches, grid) = vlm.Preprocessor.Patchify(inputs[0]);
            var blocks = new List<Tensor>();
            var features = vlm.Model.EncodeVisual(patches, [grid], blocks);
            Assert.Equal(vlm.Model.Config.Vision.Depth, blocks.Count);
            AssertClose(_f.Ref(family, $"{name}.{key}.block0"), blocks[0], $"{family} {name} {key} first vision block (attention order)");
            AssertClose(_f.Ref(family, $"{name}.{key}.features"), features, $"{family} {name} {key} vision features");
        }

        var prompt = vlm.Encode(layout, media, KVCacheOptions.FromPreset("fp16"));
        AssertClose(_f.Ref(family, $"{name}.inputs_embeds"), prompt.Embeddings, $"{family} {name} merged embeddings");
        var collector = new LayerOutputs();
        var hidden = vlm.Model.Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds, Hook = collector });
        for (int i = 0; i < collector.Outputs.Count; i++)
        {
            AssertClose(_f.Ref(family, $"{name}.layer_output.{i}"), collector.Outputs[i], $"{family} {name} decoder layer {i}");
        }

        Assert.Equal(vlm.Model.Config.Text.NumLayers, collector.Outputs.Count);
        AssertClose(_f.Ref(family, $"{name}.logits"), vlm.Model.Logits(hidden), $"{family} {name} logits");
    }

    [Theory]
    [MemberData(nameof(FamiliesAndCases))]
    public void Greedy_WithAndWithoutCache_ReproducesTransformersTokens(string family, string name)
    {
        using var scope = NewDisposeScope();
        var vlm = _f.Model(family);
        var cached = _f.Ref(family, $"{name}.greedy_cached").data<long>().Select(i => (int)i).ToArray();
        var uncached = _f.Ref(family, $"{name}.greedy_uncached").data<long>().Select(i => (int)i).ToArray();
        Assert.Equal(cached, uncached);
        var options = new GenerationOptions { MaxNewTokens = cached.Length, StopAtEndOfTurn = false };

        var updates = vlm.Generate(_f.Request(family, name), options, FullPrecision).ToList();

        Assert.Equal(cached, updates.Select(u => u.TokenId!.Value));
        Assert.Equal(FinishReason.Length, updates[^1].FinishReason);
        Assert.Equal(_f.Ref(family, $"{name}.input_ids").shape[1], updates[^1].Usage!.PromptTokens);

        // Step by step: the logits of every generated position, from the cache and from full forwards without one.
        var media = vlm.Decode(_f.Request(family, name), CancellationToken.None);
        var prompt = vlm.Encode(vlm.Layout(_f.Request(family, name), media), media, FullPrecision);
        using var cache = vlm.Model.CreateCache(FullPrecision);
        var last = vlm.Model.Logits(vlm.Model.Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds, Cache = cache })).select(1, -1)[0];
        var stepLogits = new List<Tensor> { last };
        var embeds = prompt.Embeddings;
        var positions = prompt.PositionIds!;
        for (int i = 0; i + 1 < cached.Length; i++)
        {
            long position = prompt.NextPosition + i;
            var e = vlm.Model.Embed(tensor(new long[] { cached[i] }).reshape(1, 1));
            var p = tensor(new[] { position });
            stepLogits.Add(vlm.Model.Logits(vlm.Model.Forward(new DecoderInput(e) { PositionIds = p, Cache = cache })).select(1, -1)[0]);
            embeds = cat(new[] { embeds, e }, 1);
            positions = cat(new[] { positions, p.view(1, 1).expand(3, 1) }, 1);
        }

        var full = vlm.Model.Logits(vlm.Model.Forward(new DecoderInput(embeds) { PositionIds = positions }));
        var fromFull = full[0].narrow(0, prompt.Embeddings.shape[1] - 1, cached.Length);
        AssertClose(_f.Ref(family, $"{name}.decode_logits_cached"), stack(stepLogits), $"{family} {name} cached decode logits");
        AssertClose(_f.Ref(family, $"{name}.decode_logits_uncached"), fromFull, $"{family} {name} uncached decode logits");
    }

    [Fact]
    public void ProtectedCachePreset_ScoresOnlyVideoTokensAndDecodes()
    {
        using var scope = NewDisposeScope();
        var vlm = _f.Model("qwen2_5_vl");
        var request = _f.Request("qwen2_5_vl", "mixed");
        var options = KVCacheOptions.FromPreset("vidkv-1.5/1.66") with { GroupSize = 16, ResidualLength = 16 };
        var media = vlm.Decode(request, CancellationToken.None);
        var layout = vlm.Layout(request, media);

        var prompt = vlm.Encode(layout, media, options);

        var scores = prompt.Importance!;
        var (start, length) = Assert.Single(layout.VideoSpans);
        Assert.False(scores.narrow(0, start, length).isnan().any().item<bool>());
        Assert.Equal(layout.Ids.Count - length, scores.isnan().sum().item<long>());
        var updates = vlm.Generate(request, new GenerationOptions { MaxNewTokens = 4, StopAtEndOfTurn = false }, options).ToList();
        Assert.Equal(4, updates.Count);
        Assert.True(updates[^1].Usage!.Cache.TotalBytes > 0);
    }

    private void AssertClose(Tensor expected, Tensor actual, string what, double tolerance = Tolerance)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected.to(ScalarType.Float32) - actual.to(ScalarType.Float32)).abs().max().item<float>();
        _output.WriteLine($"{what}: max |diff| {diff:E2}");
        Assert.True(diff < tolerance, $"{what}: max |diff| {diff} exceeds {tolerance}");
    }
}
