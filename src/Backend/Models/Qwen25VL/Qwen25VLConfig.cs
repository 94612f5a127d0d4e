using System.Text.Json;
using VidKV.AI.Backend.Models.Qwen2;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// A Qwen2.5-VL (<c>model_type</c> qwen2_5_vl) or Qwen2-VL (qwen2_vl) checkpoint's <c>config.json</c>, read in the
/// spellings found in the wild: nested <c>text_config</c> (transformers 5) or flat (the Hub); <c>rope_parameters</c> or
/// <c>rope_scaling</c> with <c>mrope_section</c>; <c>dtype</c> or <c>torch_dtype</c>.
/// </summary>
public sealed record Qwen25VLConfig
{
    /// <summary>The model types this configuration reads.</summary>
    public static IReadOnlyList<string> ModelTypes { get; } = ["qwen2_5_vl", "qwen2_vl"];

    /// <summary>"qwen2_5_vl" or "qwen2_vl".</summary>
    public required string ModelType { get; init; }

    /// <summary>The decoder's settings (a Qwen2 decoder; the head dimension is hidden_size / num_attention_heads).</summary>
    public required Qwen2Config Text { get; init; }

    /// <summary>The vision transformer's settings.</summary>
    public required Qwen25VLVisionConfig Vision { get; init; }

    /// <summary>
    /// How many rotary frequencies of the head take the temporal, height and width positions (<c>mrope_section</c>; they add up to
    /// half the head dimension).
    /// </summary>
    public required IReadOnlyList<int> MropeSection { get; init; }

    /// <summary>Id of <c>&lt;|image_pad|&gt;</c>.</summary>
    public int ImageTokenId { get; init; }

    /// <summary>Id of <c>&lt;|video_pad|&gt;</c>.</summary>
    public int VideoTokenId { get; init; }

    /// <summary>Id of <c>&lt;|vision_start|&gt;</c>.</summary>
    public int VisionStartTokenId { get; init; }

    /// <summary>Id of <c>&lt;|vision_end|&gt;</c>.</summary>
    public int VisionEndTokenId { get; init; }

    /// <summary>The type the weights were saved in.</summary>
    public ScalarType? CheckpointDType { get; init; }

    /// <summary>Reads <c>config.json</c> from a checkpoint folder (or the file itself).</summary>
    /// <exception cref="FileNotFoundException">There is no config.json.</exception>
    /// <exception cref="InvalidDataException">The JSON is malformed or a value is missing or invalid; the message names it.</exception>
    public static Qwen25VLConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"No config.json at '{file}'.", file);
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            return Parse(doc.RootElement, file);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{file}' is not valid JSON: {ex.Message}", ex);
        }
    }

    /// <summary>Parses a config object; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">A value is missing or invalid; the message names it.</exception>
    public static Qwen25VLConfig Parse(JsonElement root, string source)
    {
        var reader = new Reader(root, source);
        string type = reader.String("model_type", string.Empty);
        if (!ModelTypes.Contains(type))
        {
            throw new InvalidDataException($"'{source}': model_type is '{type}'; this reader loads {string.Join(", ", ModelTypes)}.");
        }

        bool qwen25 = type == "qwen2_5_vl";
        var text = root.TryGetProperty("text_config", out var t) && t.ValueKind == JsonValueKind.Object ? new Reader(t, source + ": text_config") : reader;
        var vision = root.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object
            ? new Reader(v, source + ": vision_config")
            : throw new InvalidDataException($"'{source}' has no vision_config object; is it a Qwen2.5-VL or Qwen2-VL checkpoint?");

        var rope = text.Element("rope_parameters") is { ValueKind: JsonValueKind.Object } rp ? rp
            : text.Element("rope_scaling") is { ValueKind: JsonValueKind.Object } rs ? rs
            : reader.Element("rope_scaling") is { ValueKind: JsonValueKind.Object } rr ? rr
            : (JsonElement?)null;
        double theta = rope is { } r && r.TryGetProperty("rope_theta", out var rt) && rt.ValueKind == JsonValueKind.Number ? rt.GetDouble() : text.Double("rope_theta", 1000000.0);
        if (rope is { } kind && kind.TryGetProperty("rope_type", out var rk) && rk.ValueKind == JsonValueKind.String && rk.GetString() is not ("default" or "mrope"))
        {
            throw new InvalidDataException($"'{source}': rope_type '{rk.GetString()}' is not supported; supported: default (multimodal sections).");
        }

        var section = rope is { } s && s.TryGetProperty("mrope_section", out var ms) && ms.ValueKind == JsonValueKind.Array
            ? ms.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : throw new InvalidDataException($"'{source}': no mrope_section in rope_parameters or rope_scaling; it gives the temporal, height and width parts of the rotary positions.");

        int hidden = text.Int("hidden_size", 0);
        int heads = text.Int("num_attention_heads", 0);
        var textConfig = new Qwen2Config
        {
            VocabSize = text.Int("vocab_size", 151936),
            HiddenSize = hidden,
            IntermediateSize = text.Int("intermediate_size", 0),
            NumLayers = text.Int("num_hidden_layers", 0),
            NumHeads = heads,
            NumKeyValueHeads = text.Int("num_key_value_heads", heads),
            HeadDim = heads > 0 ? hidden / heads : 0,
            RmsNormEps = text.Double("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            MaxPositionEmbeddings = text.Int("max_position_embeddings", 32768),
            TieWordEmbeddings = text.Bool("tie_word_embeddings", reader.Bool("tie_word_embeddings", false)),
            EosTokenIds = text.IntList("eos_token_id") is { Count: > 0 } eos ? eos : reader.IntList("eos_token_id"),
        };

        int embed = qwen25 ? vision.Int("hidden_size", 1280) : vision.Int("embed_dim", 1280);
        var visionConfig = new Qwen25VLVisionConfig
        {
            Qwen25 = qwen25,
            Depth = vision.Int("depth", 32),
            HiddenSize = embed,
            IntermediateSize = qwen25 ? vision.Int("intermediate_size", 3420) : (int)(embed * vision.Double("mlp_ratio", 4)),
            NumHeads = vision.Int("num_heads", vision.Int("num_attention_heads", 16)),
            OutHiddenSize = qwen25 ? vision.Int("out_hidden_size", hidden) : vision.Int("hidden_size", hidden),
            InChannels = vision.Int("in_channels", vision.Int("in_chans", 3)),
            PatchSize = vision.Int("patch_size", vision.Int("spatial_patch_size", 14)),
            TemporalPatchSize = vision.Int("temporal_patch_size", 2),
            SpatialMergeSize = vision.Int("spatial_merge_size", 2),
            WindowSize = qwen25 ? vision.Int("window_size", 112) : 0,
            FullAttentionBlocks = qwen25 ? vision.IntList("fullatt_block_indexes") : Array.Empty<int>(),
            TokensPerSecond = qwen25 ? vision.Double("tokens_per_second", 2) : 1,
            RopeTheta = vision.Element("rope_parameters") is { ValueKind: JsonValueKind.Object } vr && vr.TryGetProperty("rope_theta", out var vt) ? vt.GetDouble() : 10000.0,
        };
        string activation = vision.String("hidden_act", qwen25 ? "silu" : "quick_gelu");
        if (activation != (qwen25 ? "silu" : "quick_gelu"))
        {
            throw new InvalidDataException($"'{source}': vision hidden_act is '{activation}'; {type} vision blocks use {(qwen25 ? "silu" : "quick_gelu")}.");
        }

        var config = new Qwen25VLConfig
        {
            ModelType = type,
            Text = textConfig,
            Vision = visionConfig,
            MropeSection = section,
            ImageTokenId = reader.Int("image_token_id", 151655),
            VideoTokenId = reader.Int("video_token_id", 151656),
            VisionStartTokenId = reader.Int("vision_start_token_id", 151652),
            VisionEndTokenId = reader.Int("vision_end_token_id", 151653),
            CheckpointDType = reader.String("dtype", reader.String("torch_dtype", text.String("dtype", string.Empty))) switch
            {
                "float32" => ScalarType.Float32,
                "float16" => ScalarType.Float16,
                "bfloat16" => ScalarType.BFloat16,
                _ => null,
            },
        };
        config.Validate(source);
        return config;
    }

    private void Validate(string source)
    {
        void Positive(int value, string name)
        {
            if (value <= 0)
            {
                throw new InvalidDataException($"'{source}': {name} is {value}; it must be positive.");
            }
        }

        Positive(Text.VocabSize, "vocab_size");
        Positive(Text.HiddenSize, "hidden_size");
        Positive(Text.IntermediateSize, "intermediate_size");
        Positive(Text.NumLayers, "num_hidden_layers");
        Positive(Text.NumHeads, "num_attention_heads");
        Positive(Text.NumKeyValueHeads, "num_key_value_heads");
        Positive(Vision.Depth, "vision_config.depth");
        Positive(Vision.HiddenSize, "vision_config hidden size");
        Positive(Vision.NumHeads, "vision_config.num_heads");
        Positive(Vision.PatchSize, "vision_config.patch_size");
        Positive(Vision.TemporalPatchSize, "vision_config.temporal_patch_size");
        Positive(Vision.SpatialMergeSize, "vision_config.spatial_merge_size");
        if (Text.HiddenSize % Text.NumHeads != 0 || Text.NumHeads % Text.NumKeyValueHeads != 0)
        {
            throw new InvalidDataException(
                $"'{source}': hidden_size ({Text.HiddenSize}) must be a multiple of num_attention_heads ({Text.NumHeads}), and that of num_key_value_heads ({Text.NumKeyValueHeads}).");
        }

        if (MropeSection.Count != 3 || MropeSection.Any(x => x < 0) || MropeSection.Sum() * 2 != Text.HeadDim)
        {
            throw new InvalidDataException(
                $"'{source}': mrope_section [{string.Join(", ", MropeSection)}] must be three counts adding up to half the head dimension ({Text.HeadDim / 2}).");
        }

        if (Vision.HiddenSize % Vision.NumHeads != 0 || Vision.HeadDim % 4 != 0)
        {
            throw new InvalidDataException($"'{source}': vision width {Vision.HiddenSize} over {Vision.NumHeads} heads must give a head dimension that is a multiple of 4.");
        }

        if (Vision.Qwen25)
        {
            int unit = Vision.SpatialMergeSize * Vision.PatchSize;
            if (Vision.WindowSize < unit || Vision.WindowSize % unit != 0)
            {
                throw new InvalidDataException($"'{source}': vision window_size {Vision.WindowSize} must be a positive multiple of spatial_merge_size x patch_size ({unit}).");
            }

            if (Vision.FullAttentionBlocks.Any(i => i < 0 || i >= Vision.Depth))
            {
                throw new InvalidDataException($"'{source}': fullatt_block_indexes [{string.Join(", ", Vision.FullAttentionBlocks)}] must lie in 0..{Vision.Depth - 1}.");
            }
        }
    }

    /// <summary>Typed reads with defaults and errors that name the key.</summary>
    private readonly struct Reader(JsonElement element, string source)
    {
        public JsonElement? Element(string key) => element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public int Int(string key, int fallback) => Element(key) is { } v ? Read(key, () => v.GetInt32()) : fallback;

        public double Double(string key, double fallback) => Element(key) is { } v ? Read(key, () => v.GetDouble()) : fallback;

        public bool Bool(string key, bool fallback) => Element(key) is { } v ? Read(key, () => v.GetBoolean()) : fallback;

        public string String(string key, string fallback) => Element(key) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : fallback;

        public IReadOnlyList<int> IntList(string key) => Element(key) switch
        {
            { ValueKind: JsonValueKind.Number } v => new[] { Read(key, () => v.GetInt32()) },
            { ValueKind: JsonValueKind.Array } v => Read(key, () => v.EnumerateArray().Select(e => e.GetInt32()).ToArray()),
            _ => Array.Empty<int>(),
        };

        private T Read<T>(string key, Func<T> read)
        {
            try
            {
                return read();
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"'{source}': {key} has the wrong type ({ex.Message}).", ex);
            }
        }
    }
}
