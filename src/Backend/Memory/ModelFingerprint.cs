using System.IO.Hashing;
using System.Text;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A checkpoint folder's fingerprint (XxHash128, 32 hex digits), computed once when a model loads: every JSON file
/// (config, tokenizer, preprocessing) byte for byte, and for every safetensors file its length, its header (names, types,
/// shapes, offsets) and 64 slices of 64 KiB spread over its tensor data, so retrained weights of the same shapes change it
/// without reading gigabytes.
/// </summary>
internal static class ModelFingerprint
{
    private const int Samples = 64;
    private const int SampleBytes = 64 << 10;

    public static string Compute(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var hash = new XxHash128();
        hash.Append("vidkv-model-fingerprint/1"u8);
        var files = Directory.EnumerateFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        foreach (string name in files.Where(n => n!.EndsWith(".json", StringComparison.OrdinalIgnoreCase))!)
        {
            hash.Append(Encoding.UTF8.GetBytes($"\n{name}\n"));
            hash.Append(File.ReadAllBytes(Path.Combine(directory, name!)));
        }

        foreach (string name in files.Where(n => n!.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))!)
        {
            using var stream = new FileStream(Path.Combine(directory, name!), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            hash.Append(Encoding.UTF8.GetBytes($"\n{name}\n{stream.Length}\n"));
            byte[] lengthBytes = new byte[8];
            stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false);
            long headerLength = Math.Clamp(BitConverter.ToInt64(lengthBytes), 0, Math.Max(0, stream.Length - 8));
            Append(hash, stream, 0, 8 + headerLength);
            long dataStart = 8 + headerLength, dataLength = stream.Length - dataStart;
            for (int i = 0; i < Samples && dataLength > 0; i++)
            {
                long offset = dataStart + (dataLength <= SampleBytes ? 0 : (long)((double)i / (Samples - 1) * (dataLength - SampleBytes)));
                Append(hash, stream, offset, Math.Min(SampleBytes, dataLength));
            }
        }

        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    private static void Append(XxHash128 hash, FileStream stream, long offset, long count)
    {
        byte[] buffer = new byte[Math.Min(count, 1 << 20)];
        stream.Position = offset;
        while (count > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (read == 0)
            {
                break;
            }

            hash.Append(buffer.AsSpan(0, read));
            count -= read;
        }
    }
}
