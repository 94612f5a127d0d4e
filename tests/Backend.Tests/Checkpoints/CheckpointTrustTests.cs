using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Models.LlavaOnevision;

namespace VidKV.AI.Backend.Tests.Checkpoints;

/// <summary>
/// Checkpoint folders are not trusted: shard names stay inside the folder, tensors may not share bytes, files must be
/// regular files, and every number of config.json is checked (and checked against the tensors) before anything is allocated.
/// </summary>
public sealed class CheckpointTrustTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-trust-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Theory]
    [InlineData("../../../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("../model-00001-of-00003.safetensors")]
    [InlineData("sub/model-00001-of-00003.safetensors")]
    [InlineData("sub\\model-00001-of-00003.safetensors")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("config.json")]
    public void ShardIndex_NameOutsideTheFolderOrNotAShard_IsRefusedBeforeAnythingIsOpened(string shard)
    {
        string dir = CopyFolder(Fixtures.ModelAlt);
        string index = Path.Combine(dir, "model.safetensors.index.json");
        var node = JsonNode.Parse(File.ReadAllText(index))!;
        node["weight_map"]!["image_newline"] = shard;
        File.WriteAllText(index, node.ToJsonString());

        var ex = Assert.Throws<InvalidDataException>(() => CheckpointFolder.Open(dir));

        Assert.Contains(index, ex.Message, StringComparison.Ordinal);
        Assert.Contains("image_newline", ex.Message, StringComparison.Ordinal);
        Assert.Contains("plain name of a .safetensors file", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("bytes long", ex.Message, StringComparison.Ordinal); // nothing about the named file itself
        Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));
    }

    [Fact]
    public void ShardIndex_ThatDisagreesWithTheShards_IsRefused()
    {
        string dir = CopyFolder(Fixtures.ModelAlt);
        string index = Path.Combine(dir, "model.safetensors.index.json");
        var node = JsonNode.Parse(File.ReadAllText(index))!;
        node["weight_map"]!["image_newline"] = "model-00002-of-00003.safetensors"; // it is in shard 1
        File.WriteAllText(index, node.ToJsonString());

        var ex = Assert.Throws<InvalidDataException>(() => CheckpointFolder.Open(dir));

        Assert.Contains("image_newline", ex.Message, StringComparison.Ordinal);
        Assert.Contains("model-00001-of-00003.safetensors", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShardThatIsANamedPipe_IsRefusedWithoutBlocking()
    {
        string dir = CopyFolder(Fixtures.Model);
        string weights = Path.Combine(dir, "model.safetensors");
        File.Delete(weights);
        MakeFifo(weights);

        // Opening a pipe for reading blocks until a writer comes; none ever does here. The wait only guards the test run.
        var ex = await Task.Run(() => Assert.Throws<InvalidDataException>(() => CheckpointFolder.Open(dir))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Contains("named pipe", ex.Message, StringComparison.Ordinal);
        Assert.Contains(weights, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OverlappingTensorData_IsRefusedNamingBothTensors()
    {
        string path = Path.Combine(_temp, "overlap.safetensors");
        WriteRaw(path, """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16);

        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));

        Assert.Contains("'a'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'b'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("overlap", ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AdjacentAndEmptyTensors_AreNotOverlaps()
    {
        string path = Path.Combine(_temp, "adjacent.safetensors");
        WriteRaw(path, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[8,16]}}""", 16);

        using var file = SafetensorsFile.Open(path);

        Assert.Equal(new long[] { 0, 3 }, file.Info("e").Shape);
        using var b = file.Read("b");
        Assert.Equal(4, b.NumberOfElements);
    }

    [Theory]
    [InlineData("[-1, 4]", "dimensions must be 0 or more")]
    [InlineData("[4294967296, 4294967296, 4]", "more values than")]
    [InlineData("[9223372036854775807, 2]", "more values than")]
    public void ImpossibleShapes_AreRefused(string shape, string expected)
    {
        string path = Path.Combine(_temp, "shape.safetensors");
        WriteRaw(path, $$$"""{"a":{"dtype":"F32","shape":{{{shape}}},"data_offsets":[0,16]}}""", 16);

        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains("'a'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vision_config.num_attention_heads", "0", "vision_config.num_attention_heads is 0; allowed: an integer from 1 to 1,024")]
    [InlineData("vision_config.num_attention_heads", "-4", "vision_config.num_attention_heads is -4; allowed: an integer from 1 to 1,024")]
    [InlineData("text_config.num_attention_heads", "0", "text_config.num_attention_heads is 0; allowed")]
    [InlineData("text_config.num_attention_heads", "-4", "text_config.num_attention_heads is -4; allowed")]
    [InlineData("text_config.intermediate_size", "-1", "text_config.intermediate_size is -1; allowed: an integer from 1 to 1,048,576")]
    [InlineData("vision_config.intermediate_size", "-96", "vision_config.intermediate_size is -96; allowed")]
    [InlineData("text_config.vocab_size", "2000000000", "text_config.vocab_size is 2000000000; allowed: an integer from 1 to 16,777,216")]
    [InlineData("text_config.vocab_size", "2e9", "text_config.vocab_size is 2e9; allowed")]
    [InlineData("text_config.vocab_size", "485.5", "text_config.vocab_size is 485.5; allowed")]
    [InlineData("text_config.vocab_size", "\"485\"", "text_config.vocab_size is \"485\" (String); allowed")]
    [InlineData("text_config.hidden_size", "254", "hidden_size (254) is not a multiple of text_config.num_attention_heads (4)")]
    [InlineData("text_config.num_key_value_heads", "3", "num_attention_heads (4) must be a multiple of num_key_value_heads (3)")]
    [InlineData("text_config.num_key_value_heads", "0", "text_config.num_key_value_heads is 0; allowed")]
    [InlineData("text_config.num_hidden_layers", "0", "text_config.num_hidden_layers is 0; allowed: an integer from 1 to 1,024")]
    [InlineData("text_config.head_dim", "63", "text_config.head_dim is 63; allowed: an even number")]
    [InlineData("text_config.rms_norm_eps", "0", "text_config.rms_norm_eps is 0; allowed: greater than 0")]
    [InlineData("text_config.rms_norm_eps", "\"tiny\"", "text_config.rms_norm_eps is \"tiny\"; allowed: a number")]
    [InlineData("text_config.rope_parameters.rope_theta", "-1", "text_config.rope_theta is -1; allowed: a finite number greater than 0")]
    [InlineData("text_config.max_position_embeddings", "0", "text_config.max_position_embeddings is 0; allowed")]
    [InlineData("text_config.eos_token_id", "485", "text_config.eos_token_id is 485; allowed: 0 to 484")]
    [InlineData("text_config.tie_word_embeddings", "\"yes\"", "text_config.tie_word_embeddings is \"yes\"; allowed: true or false")]
    [InlineData("vision_config.hidden_size", "50", "vision_config.hidden_size (50) must be a multiple of num_attention_heads (4)")]
    [InlineData("vision_config.image_size", "0", "vision_config.image_size is 0; allowed")]
    [InlineData("vision_config.patch_size", "71", "vision_config.patch_size is 71; allowed: 1 to 70")]
    [InlineData("vision_config.num_channels", "4", "vision_config.num_channels is 4; allowed: 3.")]
    [InlineData("vision_config.layer_norm_eps", "-1e-6", "vision_config.layer_norm_eps is -1E-06; allowed: greater than 0")]
    [InlineData("image_token_index", "485", "image_token_index is 485; allowed: 0 to 484")]
    [InlineData("video_token_index", "-1", "video_token_index is -1; allowed")]
    [InlineData("image_grid_pinpoints", "[[70, 0]]", "image_grid_pinpoints holds 0; allowed: integers from 1 to 16,384")]
    [InlineData("image_grid_pinpoints", "[[70]]", "image_grid_pinpoints holds [70]; allowed")]
    [InlineData("vision_feature_layer", "3", "vision_feature_layer 3 is outside the 3 hidden states")]
    public void ConfigNumbers_OutsideWhatIsAllowed_FailNamingFileFieldAndRange(string field, string json, string expected)
    {
        string dir = CopyFolder(Fixtures.Model);
        string config = Path.Combine(dir, "config.json");
        SetField(config, field, JsonNode.Parse(json));

        var load = Assert.Throws<InvalidDataException>(() => LlavaOnevisionConfig.Load(dir));
        var model = Assert.Throws<InvalidDataException>(() => VideoLanguageModel.Load(dir));

        Assert.Contains(config, load.Message, StringComparison.Ordinal);
        Assert.Contains(expected, load.Message, StringComparison.Ordinal);
        Assert.Equal(load.Message, model.Message);
    }

    [Theory]
    [InlineData("text_config.vocab_size", "16000000", "embed_tokens.weight")]
    [InlineData("text_config.intermediate_size", "1000000", "1000000")]
    [InlineData("text_config.num_hidden_layers", "1000", "has no tensor for 'language_model.layers.2.")]
    [InlineData("vision_config.intermediate_size", "1048576", "mlp.fc1.weight")]
    [InlineData("text_config.num_key_value_heads", "4", "self_attn.k_proj.weight")]
    public void ConfigNumbers_ThatDisagreeWithTheTensors_FailNamingTheTensor(string field, string json, string expected)
    {
        string dir = CopyFolder(Fixtures.Model);
        SetField(Path.Combine(dir, "config.json"), field, JsonNode.Parse(json));

        var ex = Assert.Throws<InvalidDataException>(() => LlavaOnevisionModel.Load(dir));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains(dir, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigSizedForTerabytes_FailsOnTheTensorHeaders_BeforeAnyAllocation()
    {
        // 16,000,000 x 65,536 float32 embeddings are 4 TB: allocating them would fail inside libtorch (or take the
        // machine's memory), so a clear InvalidDataException shows that the headers were checked first.
        string dir = CopyFolder(Fixtures.Model);
        string config = Path.Combine(dir, "config.json");
        SetField(config, "text_config.vocab_size", JsonValue.Create(16_000_000));
        SetField(config, "text_config.hidden_size", JsonValue.Create(65_536));
        SetField(config, "text_config.num_attention_heads", JsonValue.Create(1024));

        var ex = Assert.Throws<InvalidDataException>(() => VideoLanguageModel.Load(dir));

        Assert.Contains("has shape [256], but the model expects [65536]", ex.Message, StringComparison.Ordinal); // image_newline comes first
        Assert.Contains("config and the weights disagree", ex.Message, StringComparison.Ordinal);
    }

    private string CopyFolder(string source)
    {
        string dir = Path.Combine(_temp, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }

        return dir;
    }

    /// <summary>Sets a dotted field of a JSON file ("text_config.rope_parameters.rope_theta").</summary>
    private static void SetField(string file, string field, JsonNode? value)
    {
        var root = JsonNode.Parse(File.ReadAllText(file))!;
        var parts = field.Split('.');
        var node = root;
        foreach (string part in parts[..^1])
        {
            node = node[part]!;
        }

        node[parts[^1]] = value;
        File.WriteAllText(file, root.ToJsonString());
    }

    private static void WriteRaw(string path, string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        stream.Write(new byte[dataBytes]);
    }

    private static void MakeFifo(string path)
    {
        using var process = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }
}
