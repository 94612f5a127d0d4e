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

    /// <summary>
    /// This project's key <c>vidkv_scaled_ternary_values</c>: the model was trained reading ternary cache values with their
    /// per-group scale (<see cref="VidKV.AI.Quantization.Cache.KVCacheOptions.ScaledTernary"/>), so the Compact profile's
    /// ternary presets use them with it (<see cref="ModelInfo.ScaledTernaryValues"/>). False when absent.
    /// </summary>
    public bool ScaledTernaryValues { get; init; }

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
        if (ScaledTernaryValues)
        {
            root["vidkv_scaled_ternary_values"] = true;
        }

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
    /// <exception cref="InvalidDataException">
    /// A value has the wrong type or is outside what is allowed (<see cref="Validate"/>); the message names the source, the
    /// field and the allowed values. Nothing is allocated from an unchecked number.
    /// </exception>
    public static LlavaOnevisionConfig Parse(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"'{source}' is not a JSON object.");
        }

        var reader = new ConfigReader(root, source, string.Empty);
        var text = root.TryGetProperty("text_config", out var t) && t.ValueKind == JsonValueKind.Object ? new ConfigReader(t, source, "text_config.") : reader;
        var vision = root.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object
            ? new ConfigReader(v, source, "vision_config.")
            : throw new InvalidDataException($"'{source}' has no vision_config object; is it a LLaVA-OneVision checkpoint?");

        int hidden = text.Int("hidden_size", 896, Widths);
        int heads = text.Int("num_attention_heads", 14, Heads);
        bool explicitHeadDim = text.Element("head_dim") is { ValueKind: JsonValueKind.Number };
        if (!explicitHeadDim && hidden % heads != 0)
        {
            throw new InvalidDataException(
                $"'{source}': {text.Prefix}hidden_size ({hidden}) is not a multiple of {text.Prefix}num_attention_heads ({heads}), and no head_dim is given; the heads must divide the hidden size.");
        }

        double theta = text.Element("rope_parameters") is { ValueKind: JsonValueKind.Object } rp && rp.TryGetProperty("rope_theta", out var rt)
            ? text.Number(rt, "rope_parameters.rope_theta")
            : text.Double("rope_theta", 10000.0);
        var textConfig = new Qwen2Config
        {
            VocabSize = text.Int("vocab_size", 151936, Vocabulary),
            HiddenSize = hidden,
            IntermediateSize = text.Int("intermediate_size", 4864, InnerWidths),
            NumLayers = text.Int("num_hidden_layers", 24, Layers),
            NumHeads = heads,
            NumKeyValueHeads = text.Int("num_key_value_heads", heads, Heads),
            HeadDim = explicitHeadDim ? text.Int("head_dim", 0, HeadDims) : hidden / heads,
            RmsNormEps = text.Double("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            MaxPositionEmbeddings = text.Int("max_position_embeddings", 32768, Positions),
            TieWordEmbeddings = text.Bool("tie_word_embeddings", reader.Bool("tie_word_embeddings", false)),
            EosTokenIds = text.IntList("eos_token_id"),
        };
        var visionConfig = new SiglipVisionConfig
        {
            HiddenSize = vision.Int("hidden_size", 768, Widths),
            IntermediateSize = vision.Int("intermediate_size", 3072, InnerWidths),
            NumLayers = vision.Int("num_hidden_layers", 12, Layers),
            NumHeads = vision.Int("num_attention_heads", 12, Heads),
            ImageSize = vision.Int("image_size", 224, ImageSizes),
            PatchSize = vision.Int("patch_size", 16, ImageSizes),
            NumChannels = vision.Int("num_channels", 3, (3, 3)),
            LayerNormEps = vision.Double("layer_norm_eps", 1e-6),
        };

        var config = new LlavaOnevisionConfig
        {
            Text = textConfig,
            Vision = visionConfig,
            ImageTokenId = reader.Int("image_token_index", reader.Int("image_token_id", 151646, TokenIds), TokenIds),
            VideoTokenId = reader.Int("video_token_index", reader.Int("video_token_id", 151647, TokenIds), TokenIds),
            VisionFeatureLayer = reader.Element("vision_feature_layer") is { ValueKind: JsonValueKind.Array }
                ? throw new InvalidDataException($"'{source}': vision_feature_layer lists several layers; only a single layer is supported.")
                : reader.Int("vision_feature_layer", -1, (-Layers.Max - 1, Layers.Max)),
            VisionFeatureSelectStrategy = reader.String("vision_feature_select_strategy", "full"),
            VisionAspectRatio = reader.String("vision_aspect_ratio", "anyres_max_9"),
            ImageGridPinpoints = reader.Pinpoints("image_grid_pinpoints"),
            ProjectorBias = reader.Bool("multimodal_projector_bias", true),
            ScaledTernaryValues = reader.Bool("vidkv_scaled_ternary_values", false),
            CheckpointDType = ParseDType(reader.String("dtype", reader.String("torch_dtype", text.String("dtype", text.String("torch_dtype", string.Empty))))),
        };
        config.Validate(source);
        return config;
    }

    /// <summary>
    /// Checks every number before anything is allocated from it: sizes within the ranges below, heads that divide the
    /// hidden size, key-value heads that divide the heads, an even head size, token ids inside the vocabulary, positive
    /// finite epsilons and rotary base. The message names <paramref name="source"/>, the field and what is allowed.
    /// </summary>
    /// <remarks>
    /// Ranges: vocab_size 1 to 16,777,216; hidden_size 1 to 65,536; intermediate_size 1 to 1,048,576; num_hidden_layers 1
    /// to 1,024; num_attention_heads and num_key_value_heads 1 to 1,024; head_dim an even number 2 to 4,096;
    /// max_position_embeddings 1 to 1,073,741,824; image_size and patch_size 1 to 16,384 (patch at most the image);
    /// num_channels 3; image_grid_pinpoints sides 1 to 16,384.
    /// </remarks>
    /// <param name="source">Names the configuration in messages (its file).</param>
    /// <exception cref="InvalidDataException">A value is not allowed.</exception>
    public void Validate(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        void Range(long value, (int Min, int Max) allowed, string name)
        {
            if (value < allowed.Min || value > allowed.Max)
            {
                throw new InvalidDataException($"'{source}': {name} is {value}; allowed: {Describe(allowed)}.");
            }
        }

        void PositiveFinite(double value, string name, double below)
        {
            if (!(value > 0 && value < below && double.IsFinite(value)))
            {
                string allowed = double.IsFinite(below)
                    ? $"greater than 0 and less than {below.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
                    : "a finite number greater than 0";
                throw new InvalidDataException($"'{source}': {name} is {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}; allowed: {allowed}.");
            }
        }

        ArgumentNullException.ThrowIfNull(Text);
        ArgumentNullException.ThrowIfNull(Vision);
        Range(Text.VocabSize, Vocabulary, "text_config.vocab_size");
        Range(Text.HiddenSize, Widths, "text_config.hidden_size");
        Range(Text.IntermediateSize, InnerWidths, "text_config.intermediate_size");
        Range(Text.NumLayers, Layers, "text_config.num_hidden_layers");
        Range(Text.NumHeads, Heads, "text_config.num_attention_heads");
        Range(Text.NumKeyValueHeads, Heads, "text_config.num_key_value_heads");
        Range(Text.HeadDim, HeadDims, "text_config.head_dim");
        Range(Text.MaxPositionEmbeddings, Positions, "text_config.max_position_embeddings");
        PositiveFinite(Text.RmsNormEps, "text_config.rms_norm_eps", 1);
        PositiveFinite(Text.RopeTheta, "text_config.rope_theta", double.PositiveInfinity);
        if (Text.HeadDim % 2 != 0)
        {
            throw new InvalidDataException($"'{source}': text_config.head_dim is {Text.HeadDim}; allowed: an even number (rotary embeddings rotate pairs).");
        }

        if (Text.NumHeads % Text.NumKeyValueHeads != 0)
        {
            throw new InvalidDataException($"'{source}': text_config.num_attention_heads ({Text.NumHeads}) must be a multiple of num_key_value_heads ({Text.NumKeyValueHeads}).");
        }

        foreach (int eos in Text.EosTokenIds)
        {
            Range(eos, (0, Text.VocabSize - 1), "text_config.eos_token_id");
        }

        Range(Vision.HiddenSize, Widths, "vision_config.hidden_size");
        Range(Vision.IntermediateSize, InnerWidths, "vision_config.intermediate_size");
        Range(Vision.NumLayers, Layers, "vision_config.num_hidden_layers");
        Range(Vision.NumHeads, Heads, "vision_config.num_attention_heads");
        Range(Vision.ImageSize, ImageSizes, "vision_config.image_size");
        Range(Vision.PatchSize, (1, Vision.ImageSize), "vision_config.patch_size");
        Range(Vision.NumChannels, (3, 3), "vision_config.num_channels");
        PositiveFinite(Vision.LayerNormEps, "vision_config.layer_norm_eps", 1);
        if (Vision.HiddenSize % Vision.NumHeads != 0)
        {
            throw new InvalidDataException($"'{source}': vision_config.hidden_size ({Vision.HiddenSize}) must be a multiple of num_attention_heads ({Vision.NumHeads}).");
        }

        Range(ImageTokenId, (0, Text.VocabSize - 1), "image_token_index");
        Range(VideoTokenId, (0, Text.VocabSize - 1), "video_token_index");
        foreach (var (h, w) in ImageGridPinpoints)
        {
            Range(h, ImageSizes, "image_grid_pinpoints (height)");
            Range(w, ImageSizes, "image_grid_pinpoints (width)");
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

    private static readonly (int Min, int Max) Vocabulary = (1, 1 << 24);
    private static readonly (int Min, int Max) Widths = (1, 1 << 16);
    private static readonly (int Min, int Max) InnerWidths = (1, 1 << 20);
    private static readonly (int Min, int Max) Layers = (1, 1024);
    private static readonly (int Min, int Max) Heads = (1, 1024);
    private static readonly (int Min, int Max) HeadDims = (2, 4096);
    private static readonly (int Min, int Max) Positions = (1, 1 << 30);
    private static readonly (int Min, int Max) ImageSizes = (1, 1 << 14);
    private static readonly (int Min, int Max) TokenIds = (0, (1 << 24) - 1);

    private static string Describe((int Min, int Max) allowed)
        => allowed.Min == allowed.Max ? allowed.Min.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : $"{allowed.Min.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} to {allowed.Max.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)}";

    private static ScalarType? ParseDType(string name) => name switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        _ => null,
    };

    /// <summary>Typed reads with defaults and errors that name the file, the key and what is allowed.</summary>
    private readonly struct ConfigReader(JsonElement element, string source, string prefix)
    {
        public string Prefix => prefix;

        public JsonElement? Element(string key) => element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public int Int(string key, int fallback, (int Min, int Max) allowed)
        {
            if (Element(key) is not { } v)
            {
                return fallback;
            }

            // Integers may be written as 2e9 or 64.0: read them as numbers, then require a whole value in range.
            double value = v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
            if (!(value >= allowed.Min && value <= allowed.Max && Math.Floor(value) == value))
            {
                string shown = v.ValueKind == JsonValueKind.Number ? v.GetRawText() : $"{v.GetRawText()} ({v.ValueKind})";
                string range = allowed.Min == allowed.Max ? Describe(allowed) : "an integer from " + Describe(allowed);
                throw new InvalidDataException($"'{source}': {prefix}{key} is {shown}; allowed: {range}.");
            }

            return (int)value;
        }

        public double Double(string key, double fallback) => Element(key) is { } v ? Number(v, key) : fallback;

        public double Number(JsonElement v, string key)
            => v.ValueKind == JsonValueKind.Number
                ? v.GetDouble()
                : throw new InvalidDataException($"'{source}': {prefix}{key} is {v.GetRawText()}; allowed: a number.");

        public bool Bool(string key, bool fallback) => Element(key) switch
        {
            null => fallback,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            { } v => throw new InvalidDataException($"'{source}': {prefix}{key} is {v.GetRawText()}; allowed: true or false."),
        };

        public string String(string key, string fallback) => Element(key) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : fallback;

        public IReadOnlyList<int> IntList(string key)
        {
            switch (Element(key))
            {
                case { ValueKind: JsonValueKind.Number }:
                    return new[] { Int(key, 0, TokenIds) };
                case { ValueKind: JsonValueKind.Array } v:
                    var ids = new List<int>();
                    foreach (var e in v.EnumerateArray())
                    {
                        ids.Add(WholeNumber(e, key, TokenIds));
                    }

                    return ids;
                default:
                    return Array.Empty<int>();
            }
        }

        public IReadOnlyList<(int Height, int Width)> Pinpoints(string key)
        {
            if (Element(key) is not { ValueKind: JsonValueKind.Array } pins)
            {
                return Array.Empty<(int, int)>();
            }

            var result = new List<(int, int)>();
            foreach (var p in pins.EnumerateArray())
            {
                if (p.ValueKind != JsonValueKind.Array || p.GetArrayLength() != 2 || result.Count >= 4096)
                {
                    throw new InvalidDataException($"'{source}': {prefix}{key} holds {p.GetRawText()}; allowed: at most 4096 [height, width] pairs.");
                }

                result.Add((WholeNumber(p[0], key, ImageSizes), WholeNumber(p[1], key, ImageSizes)));
            }

            return result;
        }

        private int WholeNumber(JsonElement e, string key, (int Min, int Max) allowed)
        {
            double value = e.ValueKind == JsonValueKind.Number ? e.GetDouble() : double.NaN;
            return value >= allowed.Min && value <= allowed.Max && Math.Floor(value) == value
                ? (int)value
                : throw new InvalidDataException($"'{source}': {prefix}{key} holds {e.GetRawText()}; allowed: integers from {Describe(allowed)}.");
        }
    }
}
