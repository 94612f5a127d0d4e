using System.Text.Json;

namespace VidKV.AI.Backend.Checkpoints;

/// <summary>
/// The weights of a Hugging Face checkpoint folder: <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Names are looked up across shards.
/// </summary>
internal sealed class CheckpointFolder : IDisposable
{
    private readonly Dictionary<string, SafetensorsFile> _byName;
    private readonly List<SafetensorsFile> _files;

    private CheckpointFolder(string directory, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Directory = directory;
        _files = files;
        _byName = byName;
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>Every tensor name in the checkpoint.</summary>
    public IReadOnlyCollection<string> Names => _byName.Keys;

    /// <summary>Opens the weights of a checkpoint folder.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">Neither model.safetensors nor model.safetensors.index.json is there, or a shard is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed, or a tensor is in two files.</exception>
    public static CheckpointFolder Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Checkpoint folder '{directory}' does not exist.");
        }

        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        var shardNames = new List<string>();
        if (File.Exists(index))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
                shardNames.AddRange(doc.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct(StringComparer.Ordinal));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"'{index}' is not a valid safetensors index (expected a \"weight_map\" of tensor names to shard files): {ex.Message}", ex);
            }
        }
        else if (File.Exists(single))
        {
            shardNames.Add("model.safetensors");
        }
        else
        {
            throw new FileNotFoundException(
                $"Checkpoint folder '{directory}' has no model.safetensors and no model.safetensors.index.json; only safetensors checkpoints are supported.", single);
        }

        var files = new List<SafetensorsFile>();
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in shardNames)
            {
                string path = Path.Combine(directory, shard);
                if (!File.Exists(path))
                {
                    throw new FileNotFoundException($"Shard '{shard}' listed in '{index}' is missing from '{directory}'.", path);
                }

                var file = SafetensorsFile.Open(path);
                files.Add(file);
                foreach (var name in file.Tensors.Keys)
                {
                    if (!byName.TryAdd(name, file))
                    {
                        throw new InvalidDataException($"Tensor '{name}' is in both '{byName[name].Path}' and '{path}'.");
                    }
                }
            }
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }

        return new CheckpointFolder(directory, files, byName);
    }

    /// <summary>Whether the checkpoint has a tensor of that name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The file holding a tensor.</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public SafetensorsFile FileOf(string name)
        => _byName.TryGetValue(name, out var f) ? f : throw new KeyNotFoundException($"Tensor '{name}' is not in the checkpoint at '{Directory}'.");

    /// <inheritdoc />
    public void Dispose() => _files.ForEach(f => f.Dispose());
}
