using System.Text;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// A folder of stored values, one file per key (<c>{key}.vkvm</c>), shared safely by several processes: each file is
/// written to a temporary file in the same folder and renamed over the final name, so a reader opens either the old
/// whole file or the new whole file, never a partial one.
/// </summary>
/// <remarks>
/// <para>File layout: magic <c>VIDKVDSK</c>, u16 version, u16 tag count, each tag as a length-prefixed UTF-8 string, then
/// the value. A file with another magic or version, or a truncated tag list, is reported as unreadable
/// (<see cref="InvalidDataException"/>); <see cref="SerializedVideoMemoryStore"/> then ignores it with a warning.</para>
/// <para>Thread-safe. The folder is created when missing. Nothing is evicted: delete files (or the folder) to free space.</para>
/// </remarks>
public sealed class DiskVideoMemoryStore : IVideoMemoryBlobStore
{
    /// <summary>The extension of stored files.</summary>
    public const string Extension = ".vkvm";

    private const ushort Version = 1;
    private static readonly byte[] Magic = "VIDKVDSK"u8.ToArray();

    /// <summary>Uses (and creates when missing) a folder.</summary>
    /// <exception cref="ArgumentException">The path is empty.</exception>
    /// <exception cref="IOException">The folder cannot be created.</exception>
    public DiskVideoMemoryStore(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(Folder);
    }

    /// <summary>The folder.</summary>
    public string Folder { get; }

    /// <summary>The file that holds a key's value.</summary>
    /// <exception cref="ArgumentException">The key holds characters other than letters, digits and '-'.</exception>
    public string PathOf(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (key.Length > 200 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            throw new ArgumentException($"The key '{key}' is not a file name: allowed are up to 200 ASCII letters, digits and '-'.", nameof(key));
        }

        return Path.Combine(Folder, key + Extension);
    }

    /// <inheritdoc />
    public ValueTask<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default)
    {
        string path = PathOf(key);
        cancellationToken.ThrowIfCancellationRequested();
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16);
        }
        catch (FileNotFoundException)
        {
            return ValueTask.FromResult<Stream?>(null);
        }
        catch (DirectoryNotFoundException)
        {
            return ValueTask.FromResult<Stream?>(null);
        }

        try
        {
            ReadTags(stream, path);
            return ValueTask.FromResult<Stream?>(new SubStream(stream));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask WriteAsync(string key, ReadOnlyMemory<byte> value, IReadOnlyList<string> tags, CancellationToken cancellationToken = default)
    {
        string path = PathOf(key);
        ArgumentNullException.ThrowIfNull(tags);
        string temp = Path.Combine(Folder, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                await stream.WriteAsync(Header(tags), cancellationToken).ConfigureAwait(false);
                await stream.WriteAsync(value, cancellationToken).ConfigureAwait(false);
                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true); // rename(2): atomic within a folder
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveAsync(string key, CancellationToken cancellationToken = default)
    {
        string path = PathOf(key);
        return ValueTask.FromResult(TryDelete(path));
    }

    /// <inheritdoc />
    /// <remarks>Reads the tag list of every file in the folder; unreadable files are left alone.</remarks>
    public ValueTask<int> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        int removed = 0;
        foreach (string path in Directory.EnumerateFiles(Folder, "*" + Extension))
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool tagged;
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 4096);
                tagged = ReadTags(stream, path).Contains(tag, StringComparer.Ordinal);
            }
            catch (IOException)
            {
                continue;
            }

            if (tagged && TryDelete(path))
            {
                removed++;
            }
        }

        return ValueTask.FromResult(removed);
    }

    private static byte[] Header(IReadOnlyList<string> tags)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(Version);
            w.Write(checked((ushort)tags.Count));
            foreach (string tag in tags)
            {
                w.Write(tag);
            }
        }

        return buffer.ToArray();
    }

    private static List<string> ReadTags(Stream stream, string path)
    {
        try
        {
            using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
            {
                throw new InvalidDataException($"'{path}' is not a VidKV video memory file (its magic is not VIDKVDSK).");
            }

            ushort version = r.ReadUInt16();
            if (version != Version)
            {
                throw new InvalidDataException($"'{path}' is a video memory file of version {version}; this code reads version {Version}.");
            }

            int count = r.ReadUInt16();
            var tags = new List<string>(count);
            for (int i = 0; i < count; i++)
            {
                tags.Add(r.ReadString());
            }

            return tags;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{path}' is truncated: its tag list ends early.", e);
        }
    }

    private static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }

            File.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The rest of a file from its current position, read-only (the value after the tag list).</summary>
    private sealed class SubStream(FileStream inner) : Stream
    {
        private readonly long _start = inner.Position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => inner.Length - _start;

        public override long Position
        {
            get => inner.Position - _start;
            set => inner.Position = _start + value;
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override int Read(Span<byte> buffer) => inner.Read(buffer);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => origin switch
        {
            SeekOrigin.Begin => inner.Seek(_start + offset, SeekOrigin.Begin) - _start,
            SeekOrigin.Current => inner.Seek(offset, SeekOrigin.Current) - _start,
            _ => inner.Seek(offset, SeekOrigin.End) - _start,
        };

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
