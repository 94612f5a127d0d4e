namespace VidKV.AI.Backend.Models.LlavaOnevision;

/// <summary>The LLaVA-OneVision family (config.json <c>model_type</c> "llava_onevision").</summary>
internal sealed class LlavaOnevisionFamily : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["llava_onevision"];

    /// <inheritdoc />
    public IVideoLanguageModel Load(string directory, ModelLoadOptions options) => LlavaOnevisionVideoModel.Load(directory, options);
}
