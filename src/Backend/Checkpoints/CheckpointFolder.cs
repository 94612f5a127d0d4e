using System.Text.Json;
using VidKV.AI.Backend.Media;

namespace VidKV.AI.Backend.Checkpoints;

/// <summary>
/// The weights of a Hugging Face checkpoint folder: <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Names are looked up across shards.
/// </summary>
internal sealed class CheckpointFolder : IDisposable
{
    /// <summary>The largest index read (the Hub's largest are a few megabytes).</summary>
    private const long MaxIndexBytes = 64L * 1024 * 1024;

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

    /// <summary>
    /// Opens the weights of a checkpoint folder. Files may be symbolic links (the Hugging Face cache links
    /// <c>snapshots/&lt;revision&gt;/*</c> to <c>blobs/</c>): links are followed, wherever they point. The index names shards
    /// by plain file name only (no folder, no <c>..</c>), so a shard is always an entry of the folder itself; only the
    /// folder's own links can lead elsewhere.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">Neither model.safetensors nor model.safetensors.index.json is there, or a shard is missing.</exception>
    /// <exception cref="InvalidDataException">
    /// A file is malformed, not a regular file, a shard name is not a plain file name, a tensor is in two files or not
    /// in the shard the index names.
    /// </exception>
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
        var listed = new Dictionary<string, string>(StringComparer.Ordinal);
        if (File.Exists(index))
        {
            foreach (var (tensor, shard) in ReadIndex(index))
            {
                listed[tensor] = shard;
                if (!shardNames.Contains(shard, StringComparer.Ordinal))
                {
                    shardNames.Add(shard);
                }
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

            foreach (var (tensor, shard) in listed)
            {
                if (!byName.TryGetValue(tensor, out var holder) || Path.GetFileName(holder.Path) != shard)
                {
                    throw new InvalidDataException(
                        $"'{index}' places tensor '{tensor}' in '{shard}', but {(holder is null ? "no shard holds it" : $"it is in '{Path.GetFileName(holder.Path)}'")}; the index and the shards disagree.");
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

    /// <summary>Whether a shard name from an index is a plain file name: no folder part, not "." or "..", no control characters.</summary>
    internal static bool IsPlainFileName(string name)
        => name.Length is > 0 and <= 255 && name is not ("." or "..") && name.IndexOfAny(['/', '\\', '\0']) < 0
           && !name.Any(char.IsControl) && Path.GetFileName(name) == name && !Path.IsPathRooted(name);

    /// <summary>The index's weight_map: tensor name to shard file name, each shard a plain file name ending in .safetensors.</summary>
    private static List<(string Tensor, string Shard)> ReadIndex(string index)
    {
        var map = new List<(string, string)>();
        try
        {
            using var handle = RegularFile.Open(index, $"Safetensors index '{index}'");
            long length = RandomAccess.GetLength(handle);
            if (length > MaxIndexBytes)
            {
                throw new InvalidDataException($"'{index}' is {length} bytes; a safetensors index may be at most {MaxIndexBytes} bytes.");
            }

            var bytes = new byte[length];
            int read = RandomAccess.Read(handle, bytes, 0);
            using var doc = JsonDocument.Parse(bytes.AsMemory(0, read));
            var weightMap = doc.RootElement.GetProperty("weight_map");
            foreach (var entry in weightMap.EnumerateObject())
            {
                string shard = entry.Value.GetString()!;
                if (!IsPlainFileName(shard) || !shard.EndsWith(".safetensors", StringComparison.Ordinal))
                {
                    throw new InvalidDataException(
                        $"'{index}' places tensor '{entry.Name}' in '{shard}'; allowed: the plain name of a .safetensors file in the checkpoint folder (no folders, no '..').");
                }

                map.Add((entry.Name, shard));
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentNullException)
        {
            throw new InvalidDataException($"'{index}' is not a valid safetensors index (expected a \"weight_map\" of tensor names to shard files): {ex.Message}", ex);
        }

        if (map.Count == 0)
        {
            throw new InvalidDataException($"'{index}' has an empty weight_map; it must place every tensor in a shard.");
        }

        return map;
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
