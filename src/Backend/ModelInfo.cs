namespace VidKV.AI.Backend;

/// <summary>What a loaded video-language model is and accepts.</summary>
/// <param name="Family">The model family ("llava_onevision").</param>
/// <param name="ContextLength">The longest prompt plus reply, in tokens.</param>
/// <param name="DecoderLayers">Decoder layers, each with its own compressed key-value cache.</param>
public sealed record ModelInfo(string Family, int ContextLength, int DecoderLayers)
{
    /// <summary>Whether requests may hold videos.</summary>
    public bool AcceptsVideos { get; init; } = true;

    /// <summary>Whether requests may hold images.</summary>
    public bool AcceptsImages { get; init; } = true;

    /// <summary>The computation type ("Float32", "BFloat16", "Float16").</summary>
    public string DType { get; init; } = "Float32";

    /// <summary>The device holding the weights ("cpu", "cuda:0").</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// Whether the model was trained reading ternary cache values with a per-group scale (its config's
    /// <c>vidkv_scaled_ternary_values</c>; the built-in model's is true): requests with the Compact profile's ternary presets
    /// then store them so (<see cref="VidKV.AI.Quantization.Cache.KVCacheOptions.ScaledTernary"/>; see
    /// <see cref="VideoLanguageModelBase.CacheOptionsFor"/>). The Reference profile keeps the released code's bare trits.
    /// </summary>
    public bool ScaledTernaryValues { get; init; }
}
