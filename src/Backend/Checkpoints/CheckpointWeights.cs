using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Checkpoints;

/// <summary>
/// The weights of a checkpoint folder under a family's parameter names, for loading a model: each stored tensor name is
/// mapped to the model's parameter name by the family, and the folder is checked (no two tensors for one weight, an
/// output projection or tied embeddings, every parameter present with its shape, no tensor left over) before the tensors
/// are copied into the parameters, converted to their type and device. What LLaVA-OneVision and Qwen2.5-VL share.
/// </summary>
/// <remarks>Not thread-safe; dispose it when the model is loaded (it holds the safetensors files open).</remarks>
internal sealed class CheckpointWeights : IDisposable
{
    /// <summary>The name of a separate output projection's weight.</summary>
    public const string HeadName = "lm_head.weight";

    private readonly CheckpointFolder _folder;
    private readonly Dictionary<string, string> _stored; // parameter name -> stored name

    private CheckpointWeights(CheckpointFolder folder, Dictionary<string, string> stored)
    {
        _folder = folder;
        _stored = stored;
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory => _folder.Directory;

    /// <summary>Whether the checkpoint holds a separate output projection (<see cref="HeadName"/>).</summary>
    public bool HasHead => _stored.ContainsKey(HeadName);

    /// <summary>The computation types a model loads in: float32, bfloat16 or float16.</summary>
    /// <exception cref="ArgumentException">Another type; the message names it and the allowed ones.</exception>
    public static ModelLoadOptions CheckOptions(ModelLoadOptions? options)
    {
        options ??= new ModelLoadOptions();
        if (options.DType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
        {
            throw new ArgumentException($"DType is {options.DType}; allowed: Float32, BFloat16, Float16.", nameof(options));
        }

        return options;
    }

    /// <summary>Opens a checkpoint folder's safetensors files and maps their tensor names with <paramref name="canonicalName"/>.</summary>
    /// <exception cref="FileNotFoundException">The weights are missing.</exception>
    /// <exception cref="InvalidDataException">Two stored tensors map to one parameter; the message names both.</exception>
    public static CheckpointWeights Open(string directory, Func<string, string> canonicalName)
    {
        var folder = CheckpointFolder.Open(directory);
        try
        {
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var stored in folder.Names)
            {
                string canonical = canonicalName(stored);
                if (!names.TryAdd(canonical, stored))
                {
                    throw new InvalidDataException($"Checkpoint '{directory}' holds both '{names[canonical]}' and '{stored}', which name the same weight.");
                }
            }

            return new CheckpointWeights(folder, names);
        }
        catch
        {
            folder.Dispose();
            throw;
        }
    }

    /// <summary>Whether the model gets a separate output projection: the checkpoint has one and the config does not tie it.</summary>
    /// <exception cref="InvalidDataException">There is none and the config does not tie word embeddings either.</exception>
    public bool SeparateHead(bool tieWordEmbeddings)
    {
        if (!HasHead && !tieWordEmbeddings)
        {
            throw new InvalidDataException($"Checkpoint '{Directory}' has no {HeadName} and its config does not tie word embeddings (tie_word_embeddings is false).");
        }

        return HasHead && !tieWordEmbeddings;
    }

    /// <summary>
    /// Checks that every expected parameter is stored (with its shape, when given) and that no stored tensor is left over
    /// (but <see cref="HeadName"/>, tied away, and names under <paramref name="ignoredPrefixes"/>).
    /// </summary>
    /// <param name="expected">The model's parameters and, to check them before anything is allocated, their shapes.</param>
    /// <param name="namesLookedUnder">Which naming schemes the family maps, for the message of a missing tensor.</param>
    /// <param name="family">The family's name, for the message of unexpected tensors.</param>
    /// <param name="ignoredPrefixes">Stored weights the model does not use on purpose.</param>
    /// <exception cref="InvalidDataException">A tensor is missing, has another shape or is not used; the message names it.</exception>
    public void Check(IEnumerable<(string Name, long[]? Shape)> expected, string namesLookedUnder, string family, IReadOnlyList<string>? ignoredPrefixes = null)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape) in expected)
        {
            if (!_stored.TryGetValue(name, out var stored))
            {
                throw new InvalidDataException($"Checkpoint '{Directory}' has no tensor for '{name}' (looked for it under {namesLookedUnder}).");
            }

            if (shape is not null)
            {
                var file = _folder.FileOf(stored);
                var info = file.Info(stored);
                if (!info.Shape.SequenceEqual(shape))
                {
                    throw new InvalidDataException(
                        $"Tensor '{stored}' in '{file.Path}' has shape [{string.Join(", ", info.Shape)}], but the model expects [{string.Join(", ", shape)}] from its config.json; the config and the weights disagree.");
                }
            }

            used.Add(name);
        }

        var unexpected = _stored.Keys
            .Where(n => !used.Contains(n) && n != HeadName && !(ignoredPrefixes ?? []).Any(p => n.StartsWith(p, StringComparison.Ordinal)))
            .ToList();
        if (unexpected.Count > 0)
        {
            throw new InvalidDataException(
                $"Checkpoint '{Directory}' has {unexpected.Count} tensors this model does not use, e.g. {string.Join(", ", unexpected.Take(5).Select(n => $"'{_stored[n]}'"))}; is it a {family} checkpoint with this config?");
        }
    }

    /// <summary>Copies the stored tensor of every parameter of <paramref name="model"/> into it (type and device converted, shape checked).</summary>
    /// <exception cref="InvalidDataException">A parameter has no tensor or another shape; the message names it.</exception>
    public void CopyInto(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!_stored.TryGetValue(name, out var stored))
            {
                throw new InvalidDataException($"Checkpoint '{Directory}' has no tensor for '{name}'.");
            }

            _folder.FileOf(stored).CopyInto(stored, parameter);
        }
    }

    /// <summary>Closes the safetensors files.</summary>
    public void Dispose() => _folder.Dispose();
}
