namespace VidKV.AI.Backend;

/// <summary>A model family: which checkpoints it reads (<c>model_type</c> in config.json) and how it loads them.</summary>
public interface IModelFamily
{
    /// <summary>The <c>model_type</c> values of config.json this family loads.</summary>
    IReadOnlyList<string> ModelTypes { get; }

    /// <summary>Loads a checkpoint folder of this family.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or does not fit the model; the message names it.</exception>
    IVideoLanguageModel Load(string directory, ModelLoadOptions options);
}
