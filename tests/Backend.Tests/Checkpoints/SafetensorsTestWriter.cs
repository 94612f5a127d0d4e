using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Checkpoints;

/// <summary>Writes safetensors files for tests (the format: u64 header length, JSON header, raw little-endian data).</summary>
internal static class SafetensorsTestWriter
{
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        var blobs = new List<byte[]>();
        foreach (var (name, t) in tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var bytes = t.contiguous().bytes.ToArray();
            header[name] = new { dtype = Name(t.dtype), shape = t.shape, data_offsets = new[] { offset, offset + bytes.Length } };
            offset += bytes.Length;
            blobs.Add(bytes);
        }

        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        blobs.ForEach(b => stream.Write(b));
    }

    private static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Byte => "U8",
        _ => throw new NotSupportedException(t.ToString()),
    };
}
