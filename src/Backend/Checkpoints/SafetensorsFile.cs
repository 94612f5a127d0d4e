using Microsoft.Win32.SafeHandles;
using System.Text.Json;
using TorchSharp;
using VidKV.AI.Backend.Media;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">Tensor name as stored.</param>
/// <param name="DType">Storage type.</param>
/// <param name="Shape">Shape.</param>
/// <param name="Offset">Byte offset of the data from the start of the data section.</param>
/// <param name="Length">Byte length of the data.</param>
internal sealed record SafetensorInfo(string Name, ScalarType DType, long[] Shape, long Offset, long Length);

/// <summary>
/// A safetensors file. Tensors are read from the file straight into their destination's memory (no memory mapping,
/// no staging buffer when the types agree), so loading a checkpoint does not hold a second copy of it.
/// </summary>
/// <remarks>Reading is thread-safe; dispose once done.</remarks>
internal sealed class SafetensorsFile : IDisposable
{
    /// <summary>The largest JSON header read (the safetensors format's own limit).</summary>
    private const long MaxHeaderBytes = 100_000_000;

    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;

    private SafetensorsFile(string path, SafeFileHandle handle, long dataStart, Dictionary<string, SafetensorInfo> tensors)
    {
        Path = path;
        _handle = handle;
        _dataStart = dataStart;
        Tensors = tensors;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The tensors the header lists, by name.</summary>
    public IReadOnlyDictionary<string, SafetensorInfo> Tensors { get; }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file; the message says why.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);

        // The handle's length is the file's, through any symbolic link (the Hub's cache links snapshots to blobs).
        var handle = RegularFile.Open(path, $"Safetensors file '{path}'");
        try
        {
            long size = RandomAccess.GetLength(handle);
            if (size < 8)
            {
                throw new InvalidDataException($"'{path}' is {size} bytes long: too short for a safetensors file (8-byte header length, JSON header, data).");
            }

            Span<byte> lengthBytes = stackalloc byte[8];
            RandomAccess.Read(handle, lengthBytes, 0);
            long headerLength = BitConverter.ToInt64(lengthBytes);
            if (headerLength <= 0 || headerLength > size - 8 || headerLength > MaxHeaderBytes)
            {
                throw new InvalidDataException($"'{path}' declares a {headerLength}-byte header in a {size}-byte file: not a safetensors file, or truncated (headers may be 1 to {MaxHeaderBytes} bytes).");
            }

            var header = new byte[headerLength];
            if (RandomAccess.Read(handle, header, 8) != header.Length)
            {
                throw new InvalidDataException($"'{path}' ends inside its header (truncated).");
            }

            var tensors = ParseHeader(path, header, size - 8 - headerLength);
            return new SafetensorsFile(path, handle, 8 + headerLength, tensors);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads a tensor into new CPU memory, optionally converting its type.</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public Tensor Read(string name, ScalarType? type = null)
    {
        var info = Info(name);
        var result = empty(info.Shape, info.DType);
        CopyBytes(info, result);
        if (type is { } t && t != info.DType)
        {
            using var original = result;
            result = original.to(t);
        }

        return result;
    }

    /// <summary>
    /// Copies a tensor into <paramref name="destination"/>, converting its type. The shapes must be equal (never
    /// broadcast); a same-type contiguous CPU destination is filled straight from the file.
    /// </summary>
    /// <exception cref="InvalidDataException">The shapes differ; the message names the tensor and both shapes.</exception>
    public void CopyInto(string name, Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var info = Info(name);
        if (!info.Shape.SequenceEqual(destination.shape))
        {
            throw new InvalidDataException(
                $"Tensor '{name}' in '{Path}' has shape [{string.Join(", ", info.Shape)}], but the model expects [{string.Join(", ", destination.shape)}].");
        }

        using var noGrad = torch.no_grad();
        if (destination.dtype == info.DType && destination.device_type == DeviceType.CPU && destination.is_contiguous())
        {
            CopyBytes(info, destination);
            return;
        }

        using var staged = empty(info.Shape, info.DType);
        CopyBytes(info, staged);
        destination.copy_(staged);
    }

    /// <summary>The header entry of a tensor.</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public SafetensorInfo Info(string name)
        => Tensors.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"Tensor '{name}' is not in '{Path}'.");

    /// <inheritdoc />
    public void Dispose() => _handle.Dispose();

    private void CopyBytes(SafetensorInfo info, Tensor destination)
    {
        var target = destination.bytes;
        long done = 0;
        while (done < info.Length)
        {
            int chunk = (int)Math.Min(info.Length - done, 1 << 30);
            int read = RandomAccess.Read(_handle, target.Slice((int)done, chunk), _dataStart + info.Offset + done);
            if (read <= 0)
            {
                throw new InvalidDataException($"'{Path}' ended while reading tensor '{info.Name}' (truncated).");
            }

            done += read;
        }
    }

    private static Dictionary<string, SafetensorInfo> ParseHeader(string path, byte[] header, long dataLength)
    {
        var result = new Dictionary<string, SafetensorInfo>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(header);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"'{path}' has a safetensors header that is not a JSON object.");
            }

            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    continue;
                }

                var e = entry.Value;
                string dtype = e.GetProperty("dtype").GetString() ?? string.Empty;
                var shape = e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var type = ParseType(path, entry.Name, dtype);
                long count = ElementCount(path, entry.Name, shape, dataLength);
                long expected = count * ElementSize(type);
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength || offsets[1] - offsets[0] != expected)
                {
                    throw new InvalidDataException(
                        $"Tensor '{entry.Name}' in '{path}' has data offsets [{string.Join(", ", offsets)}] that do not hold {count} {dtype} values inside the {dataLength}-byte data section (file truncated or corrupt).");
                }

                if (!result.TryAdd(entry.Name, new SafetensorInfo(entry.Name, type, shape, offsets[0], offsets[1] - offsets[0])))
                {
                    throw new InvalidDataException($"'{path}' lists tensor '{entry.Name}' twice in its header.");
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}' has a malformed safetensors header: {ex.Message}", ex);
        }

        CheckNoOverlap(path, result.Values);
        return result;
    }

    /// <summary>The number of elements of a shape: every dimension 0 or more, the product no larger than the data section.</summary>
    private static long ElementCount(string path, string name, long[] shape, long dataLength)
    {
        if (shape.Any(d => d < 0))
        {
            throw new InvalidDataException($"Tensor '{name}' in '{path}' has shape [{string.Join(", ", shape)}]; dimensions must be 0 or more.");
        }

        if (shape.Contains(0))
        {
            return 0;
        }

        long count = 1;
        foreach (long d in shape)
        {
            if (count > dataLength / d)
            {
                // More values than the data section has bytes: they cannot be stored there (and the product may overflow).
                throw new InvalidDataException(
                    $"Tensor '{name}' in '{path}' has shape [{string.Join(", ", shape)}], more values than the {dataLength}-byte data section can hold (file truncated or corrupt).");
            }

            count *= d;
        }

        return count;
    }

    /// <summary>Refuses tensors whose data overlap: each byte of the data section belongs to at most one tensor.</summary>
    private static void CheckNoOverlap(string path, IEnumerable<SafetensorInfo> tensors)
    {
        SafetensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.Length > 0).OrderBy(t => t.Offset))
        {
            if (previous is not null && t.Offset < previous.Offset + previous.Length)
            {
                throw new InvalidDataException(
                    $"Tensors '{previous.Name}' (bytes {previous.Offset} to {previous.Offset + previous.Length}) and '{t.Name}' (bytes {t.Offset} to {t.Offset + t.Length}) overlap in '{path}'; every tensor must have its own bytes (file corrupt or crafted).");
            }

            previous = t;
        }
    }

    private static ScalarType ParseType(string path, string name, string dtype) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"Tensor '{name}' in '{path}' has type '{dtype}'; supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL."),
    };

    private static int ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}
