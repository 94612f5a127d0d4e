using System.Text.Json;
using System.Text.Json.Nodes;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Qwen25VL;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>Loading Qwen2.5-VL and Qwen2-VL checkpoints through the family seam, in the spellings found in the wild.</summary>
public sealed class Qwen25VLLoadingTests : IClassFixture<QwenTinyFixture>, IDisposable
{
    private readonly QwenTinyFixture _f;
    private readonly ITestOutputHelper _output;
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "vidkv-qwen-" + Guid.NewGuid().ToString("N"));

    public Qwen25VLLoadingTests(QwenTinyFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    [Theory]
    [InlineData("qwen2_5_vl")]
    [InlineData("qwen2_vl")]
    public void VideoLanguageModelLoad_PicksTheQwenFamily(string family)
    {
        using var model = VideoLanguageModel.Load(Path.Combine(QwenTinyFixture.Folder(family), "model"));

        var qwen = Assert.IsType<Qwen25VLVideoModel>(model);
        Assert.Equal(family, model.Info.Family);
        Assert.Equal(2, model.Info.DecoderLayers);
        Assert.Equal(family == "qwen2_5_vl", qwen.Model.TiedEmbeddings);
        Assert.Equal(family == "qwen2_5_vl", qwen.Model.Config.Vision.Qwen25);
        Assert.Contains(family, VideoLanguageModel.SupportedModelTypes);
    }

    [Fact]
    public void UnsupportedModelType_FailsNamingItAndTheSupportedOnes()
    {
        Directory.CreateDirectory(_temp);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(QwenTinyFixture.Root, "model", "config.json")))!;
        config["model_type"] = "qwen3_vl_moe";
        File.WriteAllText(Path.Combine(_temp, "config.json"), config.ToJsonString());

        var ex = Assert.Throws<NotSupportedException>(() => VideoLanguageModel.Load(_temp));

        _output.WriteLine(ex.Message);
        Assert.Contains("'qwen3_vl_moe'", ex.Message, StringComparison.Ordinal);
        foreach (var supported in new[] { "llava_onevision", "qwen2_5_vl", "qwen2_vl" })
        {
            Assert.Contains(supported, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void HubStyleCheckpoint_FlatConfigShardedBf16_LoadsTheSameModel()
    {
        using var scope = NewDisposeScope();
        using var alt = Qwen25VLVideoModel.Load(Path.Combine(QwenTinyFixture.Root, "model-alt"));
        var main = _f.Model("qwen2_5_vl");

        // A flat config.json with rope_scaling, torch_dtype bfloat16, an explicit lm_head in two shards.
        Assert.Equal(main.Model.Config.MropeSection, alt.Model.Config.MropeSection);
        Assert.Equal(main.Model.Config.Vision, alt.Model.Config.Vision with { FullAttentionBlocks = main.Model.Config.Vision.FullAttentionBlocks });
        Assert.Equal(main.Model.Config.Vision.FullAttentionBlocks, alt.Model.Config.Vision.FullAttentionBlocks);
        Assert.Equal(ScalarType.BFloat16, alt.Model.Config.CheckpointDType);
        Assert.False(alt.Model.TiedEmbeddings);

        var request = _f.Request("qwen2_5_vl", "mixed");
        var media = alt.Decode(request, CancellationToken.None);
        var prompt = alt.Encode(alt.Layout(request, media), media, VidKV.AI.Quantization.Cache.KVCacheOptions.FromPreset("fp16"));
        var logits = alt.Model.Logits(alt.Model.Forward(new DecoderInput(prompt.Embeddings) { PositionIds = prompt.PositionIds }));
        var reference = _f.Ref("qwen2_5_vl", "mixed.logits");
        double relative = ((logits - reference).norm() / reference.norm()).item<float>();
        _output.WriteLine($"bf16-rounded weights vs fp32 reference: relative L2 of logits {relative:E2}");
        Assert.True(relative < 0.05, $"logits of the bf16 checkpoint are {relative} (relative L2) from the reference");
        Assert.Equal(reference.argmax(-1).select(1, -1).item<long>(), logits.argmax(-1).select(1, -1).item<long>());
    }

    [Theory]
    [InlineData("num_hidden_layers", 1000, "has no tensor for 'model.layers.2.")]
    [InlineData("intermediate_size", 4096, "the config and the weights disagree")]
    public void ConfigDisagreeingWithTheWeights_FailsBeforeAllocating_NamingTheTensor(string key, int value, string expected)
    {
        // The shared checkpoint loader checks every tensor header against the model's shapes (built on the meta device)
        // before allocating the weights: a thousand layers fail here, not in an allocation.
        Directory.CreateDirectory(_temp);
        foreach (var file in Directory.GetFiles(Path.Combine(QwenTinyFixture.Root, "model")))
        {
            File.Copy(file, Path.Combine(_temp, Path.GetFileName(file)));
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_temp, "config.json")))!;
        config["text_config"]![key] = value;
        File.WriteAllText(Path.Combine(_temp, "config.json"), config.ToJsonString());

        var ex = Assert.Throws<InvalidDataException>(() => Qwen25VLModel.Load(_temp));

        _output.WriteLine(ex.Message);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExtraTensor_FailsNamingIt()
    {
        Directory.CreateDirectory(_temp);
        foreach (var file in Directory.GetFiles(Path.Combine(QwenTinyFixture.Root, "model")).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(_temp, Path.GetFileName(file)));
        }

        using (var scope = NewDisposeScope())
        using (var source = VidKV.AI.Backend.Checkpoints.SafetensorsFile.Open(Path.Combine(QwenTinyFixture.Root, "model", "model.safetensors")))
        {
            var tensors = source.Tensors.Keys.Select(k => (k, source.Read(k))).Append(("model.visual.extra.weight", zeros(2, 2))).ToList();
            VidKV.AI.Backend.Checkpoints.SafetensorsWriter.Write(Path.Combine(_temp, "model.safetensors"), tensors);
        }

        var ex = Assert.Throws<InvalidDataException>(() => Qwen25VLModel.Load(_temp));

        Assert.Contains("'model.visual.extra.weight'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("qwen2_5_vl checkpoint", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_WithoutMropeSection_FailsNamingIt()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(QwenTinyFixture.Root, "model", "config.json")))!;
        config["text_config"]!["rope_parameters"]!.AsObject().Remove("mrope_section");
        using var doc = JsonDocument.Parse(config.ToJsonString());

        var ex = Assert.Throws<InvalidDataException>(() => Qwen25VLConfig.Parse(doc.RootElement, "test config"));

        Assert.Contains("mrope_section", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Processor_ReadsTheNestedSaveAndTheHubsFlatFile()
    {
        var pre = _f.Model("qwen2_5_vl").Preprocessor;
        Assert.Equal((3136L, 23520L), (pre.Image.MinPixels, pre.Image.MaxPixels));
        Assert.Equal((3136L, 12544L), (pre.Video.MinPixels, pre.Video.MaxPixels));

        // The Hub's preprocessor_config.json: min_pixels / max_pixels at the top level, no video settings of its own.
        Directory.CreateDirectory(_temp);
        File.WriteAllText(Path.Combine(_temp, "preprocessor_config.json"),
            """{"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor"}""");
        var hub = QwenVisionPreprocessor.FromCheckpoint(_temp);
        Assert.Equal((3136L, 12845056L), (hub.Image.MinPixels, hub.Image.MaxPixels));
        Assert.Equal((3136L, 12845056L, 2.0, 4, 768), (hub.Video.MinPixels, hub.Video.MaxPixels, hub.Video.Fps, hub.Video.MinFrames, hub.Video.MaxFrames));
        Assert.Equal((1092, 1932), QwenVisionPreprocessor.SmartResize(1080, 1920, 28, hub.Image.MinPixels, hub.Image.MaxPixels));
    }

    public void Dispose()
    {
        if (Directory.Exists(_temp))
        {
            Directory.Delete(_temp, recursive: true);
        }
    }
}
