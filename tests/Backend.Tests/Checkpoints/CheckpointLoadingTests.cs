using VidKV.AI.Backend.Models;
using System.Text.Json.Nodes;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Models.LlavaOnevision;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Checkpoints;

public sealed class CheckpointLoadingTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void BothKeyLayouts_LoadTheSameWeights()
    {
        // model: save_pretrained names (vision_tower.*), fp32, one file, tied embeddings, image_token_index, dtype, rope_parameters.
        // model-alt: Hub names (vision_tower.vision_model.*), bf16, three shards + index, lm_head written out,
        // image_token_id, torch_dtype, rope_theta.
        using var main = LlavaOnevisionModel.Load(Fixtures.Model);
        using var alt = LlavaOnevisionModel.Load(Fixtures.ModelAlt);

        Assert.True(main.TiedEmbeddings);
        Assert.False(alt.TiedEmbeddings);
        Assert.Equal(main.Config with { CheckpointDType = null, Text = main.Config.Text with { TieWordEmbeddings = false } }, alt.Config with { CheckpointDType = null }, new ConfigComparer());
        var altParams = alt.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in main.named_parameters())
        {
            var expected = p.to(ScalarType.BFloat16).to(ScalarType.Float32);
            Assert.True(expected.eq(altParams[name]).all().item<bool>(), $"{name} differs between the layouts");
        }

        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 481, 12, 40 }).reshape(1, 3);
        var altLogits = alt.Logits(alt.Forward(new DecoderInput(alt.Embed(ids))));
        var mainHead = main.Logits(main.Forward(new DecoderInput(alt.Embed(ids))));
        Assert.True((altLogits - mainHead).abs().max().item<float>() < 0.05, "bf16-rounded weights give nearly the same logits");
    }

    [Fact]
    public void CanonicalName_MapsEveryKnownSpelling()
    {
        Assert.Equal("language_model.layers.0.mlp.up_proj.weight", LlavaOnevisionModel.CanonicalName("language_model.model.layers.0.mlp.up_proj.weight"));
        Assert.Equal("language_model.layers.0.mlp.up_proj.weight", LlavaOnevisionModel.CanonicalName("model.language_model.layers.0.mlp.up_proj.weight"));
        Assert.Equal("lm_head.weight", LlavaOnevisionModel.CanonicalName("language_model.lm_head.weight"));
        Assert.Equal("lm_head.weight", LlavaOnevisionModel.CanonicalName("lm_head.weight"));
        Assert.Equal("vision_tower.encoder.layers.1.mlp.fc1.bias", LlavaOnevisionModel.CanonicalName("vision_tower.vision_model.encoder.layers.1.mlp.fc1.bias"));
        Assert.Equal("vision_tower.encoder.layers.1.mlp.fc1.bias", LlavaOnevisionModel.CanonicalName("model.vision_tower.encoder.layers.1.mlp.fc1.bias"));
        Assert.Equal("image_newline", LlavaOnevisionModel.CanonicalName("model.image_newline"));
        Assert.Equal("multi_modal_projector.linear_1.weight", LlavaOnevisionModel.CanonicalName("model.multi_modal_projector.linear_1.weight"));
    }

    [Fact]
    public void WrongShapedTensor_FailsNamingIt()
    {
        string dir = CopyWith(t => t["multi_modal_projector.linear_1.weight"] = zeros(7, 3));

        var ex = Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));

        Assert.Contains("multi_modal_projector.linear_1.weight", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[7, 3]", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[256, 48]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingTensor_FailsNamingIt()
    {
        string dir = CopyWith(t => t.Remove("language_model.model.layers.1.self_attn.k_proj.bias"));

        var ex = Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));

        Assert.Contains("language_model.layers.1.self_attn.k_proj.bias", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnexpectedTensor_Fails()
    {
        string dir = CopyWith(t => t["language_model.model.layers.9.extra.weight"] = zeros(2));

        var ex = Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));

        Assert.Contains("language_model.model.layers.9.extra.weight", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFiles_FailClearly()
    {
        string noWeights = Path.Combine(_temp, "no-weights");
        Directory.CreateDirectory(noWeights);
        File.Copy(Path.Combine(Fixtures.Model, "config.json"), Path.Combine(noWeights, "config.json"));
        var weights = Assert.Throws<FileNotFoundException>(() => LlavaOnevisionModel.Load(noWeights));
        Assert.Contains("model.safetensors", weights.Message, StringComparison.Ordinal);

        string noConfig = Path.Combine(_temp, "no-config");
        Directory.CreateDirectory(noConfig);
        var config = Assert.Throws<FileNotFoundException>(() => LlavaOnevisionModel.Load(noConfig));
        Assert.Contains("config.json", config.Message, StringComparison.Ordinal);

        Assert.Throws<DirectoryNotFoundException>(() => CheckpointFolder.Open(Path.Combine(_temp, "nowhere")));

        string shardMissing = Path.Combine(_temp, "shard-missing");
        Directory.CreateDirectory(shardMissing);
        foreach (var f in Directory.GetFiles(Fixtures.ModelAlt).Where(f => !f.EndsWith("00002-of-00003.safetensors", StringComparison.Ordinal)))
        {
            File.Copy(f, Path.Combine(shardMissing, Path.GetFileName(f)));
        }

        var shard = Assert.Throws<FileNotFoundException>(() => LlavaOnevisionModel.Load(shardMissing));
        Assert.Contains("model-00002-of-00003.safetensors", shard.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedWeights_FailClearly()
    {
        string dir = Path.Combine(_temp, "truncated");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Fixtures.Model, "config.json"), Path.Combine(dir, "config.json"));
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Model, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), bytes[..(bytes.Length / 2)]);

        var ex = Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));

        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_FlatLayoutAndOlderSpellings_Parse()
    {
        var node = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model, "config.json")))!.AsObject();
        var text = node["text_config"]!.AsObject();
        node.Remove("text_config");
        foreach (var (k, v) in text.ToList())
        {
            text.Remove(k);
            node[k] = v;
        }

        node.Remove("rope_parameters");
        node["rope_theta"] = 5000.0;
        node.Remove("image_token_index");
        node["image_token_id"] = 7;
        string path = Path.Combine(_temp, "config.json");
        File.WriteAllText(path, node.ToJsonString());

        var config = LlavaOnevisionConfig.Load(path);

        Assert.Equal(256, config.Text.HiddenSize);
        Assert.Equal(2, config.Text.NumKeyValueHeads);
        Assert.Equal(64, config.Text.HeadDim);
        Assert.Equal(5000.0, config.Text.RopeTheta);
        Assert.Equal(7, config.ImageTokenId);
        Assert.Equal(484, config.VideoTokenId);
        Assert.Equal(ScalarType.Float32, config.CheckpointDType);
    }

    [Fact]
    public void Config_Invalid_NamesTheKey()
    {
        var node = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model, "config.json")))!.AsObject();
        node["text_config"]!["num_key_value_heads"] = 3;
        string path = Path.Combine(_temp, "config.json");
        File.WriteAllText(path, node.ToJsonString());
        Assert.Contains("num_key_value_heads", Assert.Throws<InvalidDataException>(() => LlavaOnevisionConfig.Load(path)).Message, StringComparison.Ordinal);

        File.WriteAllText(path, "{ not json");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => LlavaOnevisionConfig.Load(path)).Message, StringComparison.Ordinal);
    }

    /// <summary>Copies the fp32 fixture with its weights changed.</summary>
    private string CopyWith(Action<Dictionary<string, Tensor>> change)
    {
        string dir = Path.Combine(_temp, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Fixtures.Model, "config.json"), Path.Combine(dir, "config.json"));
        using var file = SafetensorsFile.Open(Path.Combine(Fixtures.Model, "model.safetensors"));
        var tensors = file.Tensors.Keys.ToDictionary(n => n, n => file.Read(n));
        change(tensors);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors.Select(p => (p.Key, p.Value)).ToList());
        foreach (var t in tensors.Values)
        {
            t.Dispose();
        }

        return dir;
    }

    private sealed class ConfigComparer : IEqualityComparer<LlavaOnevisionConfig>
    {
        public bool Equals(LlavaOnevisionConfig? x, LlavaOnevisionConfig? y)
            => x is not null && y is not null && x.Text with { EosTokenIds = Array.Empty<int>() } == y.Text with { EosTokenIds = Array.Empty<int>() }
               && x.Vision == y.Vision && x.ImageTokenId == y.ImageTokenId && x.VideoTokenId == y.VideoTokenId
               && x.ImageGridPinpoints.SequenceEqual(y.ImageGridPinpoints) && x.Text.EosTokenIds.SequenceEqual(y.Text.EosTokenIds);

        public int GetHashCode(LlavaOnevisionConfig obj) => 0;
    }
}
