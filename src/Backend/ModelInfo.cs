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
}
