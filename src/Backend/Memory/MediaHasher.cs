using System.IO.Hashing;
using System.Text;
using VidKV.AI.Backend.Media;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// Content hashes of media items (XxHash128, 32 hex digits): encoded media hash their bytes (a file and the same bytes in
/// memory hash alike), a folder of frames hashes each file's name and content in name order, pixels hash their type, shape
/// and bytes. Reading a file costs far less than decoding it.
/// </summary>
internal static class MediaHasher
{
    public static string Hash(MediaSource source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var hash = new XxHash128();
        if (source.Pixels is { } pixels)
        {
            hash.Append(Encoding.UTF8.GetBytes($"pixels:{pixels.dtype}:[{string.Join(",", pixels.shape)}]:"));
            using var cpu = pixels.cpu().contiguous();
            hash.Append(cpu.bytes);
        }
        else if (source.Bytes is { } bytes)
        {
            hash.Append("encoded:"u8);
            hash.Append(bytes.Span);
        }
        else if (Directory.Exists(source.Path))
        {
            hash.Append("frames:"u8);
            foreach (string file in Directory.EnumerateFiles(source.Path!).Order(StringComparer.Ordinal))
            {
                hash.Append(Encoding.UTF8.GetBytes(Path.GetFileName(file) + ":"));
                AppendFile(hash, file, cancellationToken);
            }
        }
        else
        {
            hash.Append("encoded:"u8);
            AppendFile(hash, source.Path!, cancellationToken);
        }

        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    private static void AppendFile(XxHash128 hash, string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The media file '{path}' does not exist.", path);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        byte[] buffer = new byte[1 << 20];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hash.Append(buffer.AsSpan(0, read));
        }
    }
}
