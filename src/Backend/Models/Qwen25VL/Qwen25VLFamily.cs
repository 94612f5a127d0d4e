namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>The Qwen2.5-VL and Qwen2-VL family (config.json <c>model_type</c> "qwen2_5_vl" or "qwen2_vl").</summary>
internal sealed class Qwen25VLFamily : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => Qwen25VLConfig.ModelTypes;

    /// <inheritdoc />
    public IVideoLanguageModel Load(string directory, ModelLoadOptions options) => Qwen25VLVideoModel.Load(directory, options);
}
