using VidKV.AI.Backend.Models.LlavaOnevision;

namespace VidKV.AI.Backend;

/// <summary>
/// The model that ships with the library: VidKV-Tiny, a small LLaVA-OneVision trained by this project on its synthetic
/// video question-answering task (see the repository's README). Its checkpoint folder is copied next to the
/// application (<c>models/vidkv-tiny</c> under the application's base directory) by every project that references
/// VidKV.AI.Backend.
/// </summary>
public static class BuiltInModel
{
    /// <summary>The model's name, as reported to callers.</summary>
    public const string Name = "vidkv-tiny";

    /// <summary>The environment variable that, when set, points at another folder holding the built-in model.</summary>
    public const string DirectoryVariable = "VIDKV_BUILTIN_MODEL";

    /// <summary>
    /// The checkpoint folder: <c>VIDKV_BUILTIN_MODEL</c> when set, otherwise <c>models/vidkv-tiny</c> under
    /// <see cref="AppContext.BaseDirectory"/>.
    /// </summary>
    public static string Directory =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } overridden
            ? overridden
            : Path.Combine(AppContext.BaseDirectory, "models", Name);

    /// <summary>Whether the folder holds a checkpoint (config.json and model.safetensors).</summary>
    public static bool IsAvailable =>
        File.Exists(Path.Combine(Directory, "config.json")) && File.Exists(Path.Combine(Directory, "model.safetensors"));

    /// <summary>Loads the built-in model.</summary>
    /// <param name="options">Device and dtype; <see langword="null"/> for float32 on the CPU.</param>
    /// <exception cref="DirectoryNotFoundException">The model's files are not where <see cref="Directory"/> says.</exception>
    public static LlavaOnevisionVideoModel Load(ModelLoadOptions? options = null)
    {
        if (!IsAvailable)
        {
            throw new DirectoryNotFoundException(
                $"The built-in model was not found in '{Directory}' (config.json and model.safetensors). It is copied there by the "
                + $"VidKV.AI.Backend build; set {DirectoryVariable} to a folder holding it, or load a checkpoint folder with VideoLanguageModel.Load.");
        }

        return LlavaOnevisionVideoModel.Load(Directory, options);
    }
}
