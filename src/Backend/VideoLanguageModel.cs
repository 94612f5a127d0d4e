using System.Collections.Concurrent;
using System.Text.Json;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Models.Qwen25VL;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Backend;

/// <summary>
/// Loads a checkpoint folder as the family its <c>config.json</c> names (<c>model_type</c>): the entry point for every
/// video-language model. LLaVA-OneVision, Qwen2.5-VL and Qwen2-VL are built in; other families are added with <see cref="RegisterFamily"/>.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public static class VideoLanguageModel
{
    private static readonly ConcurrentDictionary<string, IModelFamily> Registered = new(StringComparer.Ordinal);

    static VideoLanguageModel()
    {
        RegisterFamily(new LlavaOnevisionFamily());
        RegisterFamily(new Qwen25VLFamily());
    }

    /// <summary>The <c>model_type</c> values that can be loaded, sorted.</summary>
    public static IReadOnlyList<string> SupportedModelTypes => Registered.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>Adds a family: checkpoints whose <c>model_type</c> is one of <see cref="IModelFamily.ModelTypes"/> load through it.</summary>
    /// <exception cref="ArgumentException">Another family already loads one of its model types.</exception>
    public static void RegisterFamily(IModelFamily family)
    {
        ArgumentNullException.ThrowIfNull(family);
        foreach (string type in family.ModelTypes)
        {
            var registered = Registered.GetOrAdd(type, family);
            if (!ReferenceEquals(registered, family) && registered.GetType() != family.GetType())
            {
                throw new ArgumentException($"model_type '{type}' is already loaded by {registered.GetType().Name}.", nameof(family));
            }
        }
    }

    /// <summary>Loads a checkpoint folder: config.json (its <c>model_type</c> picks the family), weights, tokenizer, preprocessing.</summary>
    /// <param name="directory">The folder (a Hugging Face snapshot folder, links included).</param>
    /// <param name="options">Device and type; <see langword="null"/> for float32 on the CPU.</param>
    /// <exception cref="FileNotFoundException">config.json or another required file is missing; the message names it.</exception>
    /// <exception cref="NotSupportedException">No family loads the checkpoint's <c>model_type</c>; the message names it and the supported ones.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or does not fit the model; the message names it.</exception>
    public static IVideoLanguageModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        TorchRuntime.EnsureLoaded();
        string type = ReadModelType(directory);
        if (!Registered.TryGetValue(type, out var family))
        {
            throw new NotSupportedException(
                $"The checkpoint '{directory}' is a '{type}' model (config.json model_type); supported: {string.Join(", ", SupportedModelTypes)}.");
        }

        return family.Load(directory, options ?? new ModelLoadOptions());
    }

    /// <summary>config.json's <c>model_type</c>.</summary>
    /// <exception cref="FileNotFoundException">There is no config.json.</exception>
    /// <exception cref="InvalidDataException">It is not JSON or has no model_type string.</exception>
    public static string ReadModelType(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{directory}' has no config.json: it is not a model checkpoint folder.", path);
        }

        try
        {
            using var stream = File.OpenRead(path);
            using var document = JsonDocument.Parse(stream);
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String
                && type.GetString() is { Length: > 0 } name)
            {
                return name;
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }

        throw new InvalidDataException($"'{path}' has no \"model_type\" string; supported model types: {string.Join(", ", SupportedModelTypes)}.");
    }
}
