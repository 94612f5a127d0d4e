using System.Text.Json;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Backend.Models.Siglip;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.LlavaOnevision;

/// <summary>
/// A LLaVA-OneVision checkpoint's <c>config.json</c>, read in either spelling found in the wild: nested
/// <c>text_config</c> or flat; <c>rope_theta</c> or <c>rope_parameters</c>; <c>torch_dtype</c> or <c>dtype</c>;
/// <c>image_token_index</c> or <c>image_token_id</c>.
/// </summary>
public sealed record LlavaOnevisionConfig
{
    /// <summary>The decoder's settings.</summary>
    public required Qwen2Config Text { get; init; }

    /// <summary>The vision tower's settings.</summary>
    public required SiglipVisionConfig Vision { get; init; }

    /// <summary>Id of the <c>&lt;image&gt;</c> placeholder.</summary>
    public int ImageTokenId { get; init; }

    /// <summary>Id of the <c>&lt;video&gt;</c> placeholder.</summary>
    public int VideoTokenId { get; init; }

    /// <summary>Vision encoder layer whose output is used (negative counts from the end; -1 is the last).</summary>
    public int VisionFeatureLayer { get; init; } = -1;

    /// <summary>"full" keeps every patch; "default" drops the first (CLS) position.</summary>
    public string VisionFeatureSelectStrategy { get; init; } = "full";

    /// <summary>Image tiling, e.g. "anyres_max_9".</summary>
    public string VisionAspectRatio { get; init; } = "anyres_max_9";

    /// <summary>Candidate (height, width) resolutions for tiling images.</summary>
    public IReadOnlyList<(int Height, int Width)> ImageGridPinpoints { get; init; } = Array.Empty<(int, int)>();

    /// <summary>Whether the projector's linear layers have biases.</summary>
    public bool ProjectorBias { get; init; } = true;

    /// <summary>The type the weights were saved in.</summary>
    public ScalarType? CheckpointDType { get; init; }

    /// <summary>Video tokens per frame after 2x pooling: ceil(p/2)^2 for p patches per side (196 for 27).</summary>
    public int VideoTokensPerFrame => (int)Math.Pow(Math.Ceiling(Vision.PatchesPerSide / 2.0), 2);

    /// <summary>
    /// This configuration as a transformers-style <c>config.json</c> (model_type llava_onevision, nested text_config and
    /// vision_config), readable by <see cref="Load"/> and by transformers.
    /// </summary>
    public string ToJson()
    {
        var text = new System.Text.Json.Nodes.JsonObject
        {
            ["model_type"] = "qwen2",
            ["vocab_size"] = Text.VocabSize,
            ["hidden_size"] = Text.HiddenSize,
            ["intermediate_size"] = Text.IntermediateSize,
            ["num_hidden_layers"] = Text.NumLayers,
            ["num_attention_heads"] = Text.NumHeads,
            ["num_key_value_heads"] = Text.NumKeyValueHeads,
            ["head_dim"] = Text.HeadDim,
            ["rms_norm_eps"] = Text.RmsNormEps,
            ["rope_theta"] = Text.RopeTheta,
            ["max_position_embeddings"] = Text.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = Text.TieWordEmbeddings,
            ["hidden_act"] = "silu",
            ["eos_token_id"] = new System.Text.Json.Nodes.JsonArray(Text.EosTokenIds.Select(i => (System.Text.Json.Nodes.JsonNode?)i).ToArray()),
        };
        var vision = new System.Text.Json.Nodes.JsonObject
        {
            ["model_type"] = "siglip_vision_model",
            ["hidden_size"] = Vision.HiddenSize,
            ["intermediate_size"] = Vision.IntermediateSize,
            ["num_hidden_layers"] = Vision.NumLayers,
            ["num_attention_heads"] = Vision.NumHeads,
            ["image_size"] = Vision.ImageSize,
            ["patch_size"] = Vision.PatchSize,
            ["num_channels"] = Vision.NumChannels,
            ["layer_norm_eps"] = Vision.LayerNormEps,
            ["hidden_act"] = "gelu_pytorch_tanh",
        };
        var root = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray("LlavaOnevisionForConditionalGeneration"),
            ["model_type"] = "llava_onevision",
            ["text_config"] = text,
            ["vision_config"] = vision,
            ["image_token_index"] = ImageTokenId,
            ["video_token_index"] = VideoTokenId,
            ["vision_feature_layer"] = VisionFeatureLayer,
            ["vision_feature_select_strategy"] = VisionFeatureSelectStrategy,
            ["vision_aspect_ratio"] = VisionAspectRatio,
            ["image_grid_pinpoints"] = new System.Text.Json.Nodes.JsonArray(ImageGridPinpoints.Select(p => (System.Text.Json.Nodes.JsonNode?)new System.Text.Json.Nodes.JsonArray(p.Height, p.Width)).ToArray()),
            ["projector_hidden_act"] = "gelu",
            ["multimodal_projector_bias"] = ProjectorBias,
            ["tie_word_embeddings"] = Text.TieWordEmbeddings,
            ["dtype"] = CheckpointDType switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads <c>config.json</c> from a checkpoint folder (or the file itself).</summary>
    /// <exception cref="FileNotFoundException">There is no config.json.</exception>
    /// <exception cref="InvalidDataException">The JSON is malformed or a required value is missing or invalid; the message names it.</exception>
    public static LlavaOnevisionConfig Load(string path)
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
    public static LlavaOnevisionConfig Parse(JsonElement root, string source)
    {
        var reader = new ConfigReader(root, source);
        var text = root.TryGetProperty("text_config", out var t) && t.ValueKind == JsonValueKind.Object ? new ConfigReader(t, source + ": text_config") : reader;
        var vision = root.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object
            ? new ConfigReader(v, source + ": vision_config")
            : throw new InvalidDataException($"'{source}' has no vision_config object; is it a LLaVA-OneVision checkpoint?");

        int hidden = text.Int("hidden_size", 896);
        int heads = text.Int("num_attention_heads", 14);
        double theta = text.Element("rope_parameters") is { ValueKind: JsonValueKind.Object } rp && rp.TryGetProperty("rope_theta", out var rt)
            ? rt.GetDouble()
            : text.Double("rope_theta", 10000.0);
        var textConfig = new Qwen2Config
        {
            VocabSize = text.Int("vocab_size", 151936),
            HiddenSize = hidden,
            IntermediateSize = text.Int("intermediate_size", 4864),
            NumLayers = text.Int("num_hidden_layers", 24),
            NumHeads = heads,
            NumKeyValueHeads = text.Int("num_key_value_heads", heads),
            HeadDim = text.Element("head_dim") is { ValueKind: JsonValueKind.Number } hd ? hd.GetInt32() : hidden / heads,
            RmsNormEps = text.Double("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            MaxPositionEmbeddings = text.Int("max_position_embeddings", 32768),
            TieWordEmbeddings = text.Bool("tie_word_embeddings", reader.Bool("tie_word_embeddings", false)),
            EosTokenIds = text.IntList("eos_token_id"),
        };
        var visionConfig = new SiglipVisionConfig
        {
            HiddenSize = vision.Int("hidden_size", 768),
            IntermediateSize = vision.Int("intermediate_size", 3072),
            NumLayers = vision.Int("num_hidden_layers", 12),
            NumHeads = vision.Int("num_attention_heads", 12),
            ImageSize = vision.Int("image_size", 224),
            PatchSize = vision.Int("patch_size", 16),
            NumChannels = vision.Int("num_channels", 3),
            LayerNormEps = vision.Double("layer_norm_eps", 1e-6),
        };

        var config = new LlavaOnevisionConfig
        {
            Text = textConfig,
            Vision = visionConfig,
            ImageTokenId = reader.Int("image_token_index", reader.Int("image_token_id", 151646)),
            VideoTokenId = reader.Int("video_token_index", reader.Int("video_token_id", 151647)),
            VisionFeatureLayer = reader.Element("vision_feature_layer") is { ValueKind: JsonValueKind.Array }
                ? throw new InvalidDataException($"'{source}': vision_feature_layer lists several layers; only a single layer is supported.")
                : reader.Int("vision_feature_layer", -1),
            VisionFeatureSelectStrategy = reader.String("vision_feature_select_strategy", "full"),
            VisionAspectRatio = reader.String("vision_aspect_ratio", "anyres_max_9"),
            ImageGridPinpoints = reader.Element("image_grid_pinpoints") is { ValueKind: JsonValueKind.Array } pins
                ? pins.EnumerateArray().Select(p => (p[0].GetInt32(), p[1].GetInt32())).ToArray()
                : Array.Empty<(int, int)>(),
            ProjectorBias = reader.Bool("multimodal_projector_bias", true),
            CheckpointDType = ParseDType(reader.String("dtype", reader.String("torch_dtype", text.String("dtype", text.String("torch_dtype", string.Empty))))),
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

        Positive(Text.VocabSize, "text_config.vocab_size");
        Positive(Text.HiddenSize, "text_config.hidden_size");
        Positive(Text.NumLayers, "text_config.num_hidden_layers");
        Positive(Text.NumHeads, "text_config.num_attention_heads");
        Positive(Text.NumKeyValueHeads, "text_config.num_key_value_heads");
        Positive(Vision.HiddenSize, "vision_config.hidden_size");
        Positive(Vision.PatchSize, "vision_config.patch_size");
        Positive(Vision.ImageSize, "vision_config.image_size");
        if (Text.NumHeads % Text.NumKeyValueHeads != 0)
        {
            throw new InvalidDataException($"'{source}': num_attention_heads ({Text.NumHeads}) must be a multiple of num_key_value_heads ({Text.NumKeyValueHeads}).");
        }

        if (Vision.HiddenSize % Vision.NumHeads != 0)
        {
            throw new InvalidDataException($"'{source}': vision hidden_size ({Vision.HiddenSize}) must be a multiple of num_attention_heads ({Vision.NumHeads}).");
        }

        if (VisionFeatureSelectStrategy is not ("full" or "default"))
        {
            throw new InvalidDataException($"'{source}': vision_feature_select_strategy is '{VisionFeatureSelectStrategy}'; allowed: full, default.");
        }

        if (VisionFeatureLayer >= Vision.NumLayers + 1 || VisionFeatureLayer < -(Vision.NumLayers + 1))
        {
            throw new InvalidDataException($"'{source}': vision_feature_layer {VisionFeatureLayer} is outside the {Vision.NumLayers + 1} hidden states of the vision tower.");
        }
    }

    private static ScalarType? ParseDType(string name) => name switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        _ => null,
    };

    /// <summary>Typed reads with defaults and errors that name the key.</summary>
    private readonly struct ConfigReader(JsonElement element, string source)
    {
        public JsonElement? Element(string key) => element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public int Int(string key, int fallback) => Element(key) is { } v ? Read(key, () => v.GetInt32()) : fallback;

        public double Double(string key, double fallback) => Element(key) is { } v ? Read(key, () => v.GetDouble()) : fallback;

        public bool Bool(string key, bool fallback) => Element(key) is { } v ? Read(key, () => v.GetBoolean()) : fallback;

        public string String(string key, string fallback) => Element(key) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : fallback;

        public IReadOnlyList<int> IntList(string key) => Element(key) switch
        {
            { ValueKind: JsonValueKind.Number } v => new[] { v.GetInt32() },
            { ValueKind: JsonValueKind.Array } v => v.EnumerateArray().Select(e => e.GetInt32()).ToArray(),
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
