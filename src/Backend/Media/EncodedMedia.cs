using System.Buffers;
using Microsoft.Win32.SafeHandles;
using SkiaSharp;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Encoded media as SkiaSharp reads it (<see cref="SKData"/>), held once: a file is read straight into native memory,
/// bytes in memory are pinned and wrapped without a copy, and a stream is copied once.
/// </summary>
internal static class EncodedMedia
{
    /// <summary>Bytes read between cancellation checks.</summary>
    private const int Chunk = 16 << 20;

    /// <summary>Opens a regular file and checks its length against <see cref="MediaLimits.MaxBytes"/>.</summary>
    /// <exception cref="FileNotFoundException">Nothing is there.</exception>
    /// <exception cref="InvalidDataException">It is not a regular file.</exception>
    /// <exception cref="MediaLimitExceededException">It is too long.</exception>
    public static SafeFileHandle OpenFile(string path, string what, MediaBudget budget, out long length)
    {
        var handle = RegularFile.Open(path, $"{what} '{path}'");
        try
        {
            length = RandomAccess.GetLength(handle);
            budget.CheckBytes(path, length);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The first bytes of an open file (at most <see cref="MediaSniffer.HeadLength"/>).</summary>
    public static byte[] ReadHead(SafeFileHandle handle)
    {
        var head = new byte[MediaSniffer.HeadLength];
        int total = 0;
        while (total < head.Length)
        {
            int read = RandomAccess.Read(handle, head.AsSpan(total), total);
            if (read <= 0)
            {
                break;
            }

            total += read;
        }

        return head[..total];
    }

    /// <summary>Reads a whole open file into native memory (one copy), checking cancellation between chunks.</summary>
    /// <exception cref="InvalidDataException">The file changed length while it was read.</exception>
    public static unsafe SKData ReadFile(SafeFileHandle handle, long length, string name, CancellationToken cancellationToken)
    {
        var data = SKData.Create(length);
        try
        {
            byte* start = (byte*)data.Data;
            long done = 0;
            while (done < length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int chunk = (int)Math.Min(length - done, Chunk);
                int read = RandomAccess.Read(handle, new Span<byte>(start + done, chunk), done);
                if (read <= 0)
                {
                    throw new InvalidDataException($"'{name}' became shorter while it was read ({done} of {length} bytes); it is being changed.");
                }

                done += read;
            }

            return data;
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>Wraps bytes held in memory without copying them: they stay pinned until the data is disposed.</summary>
    public static unsafe SKData Wrap(ReadOnlyMemory<byte> bytes)
    {
        var pin = bytes.Pin();
        return SKData.Create((IntPtr)pin.Pointer, bytes.Length, static (_, context) => ((IDisposable)context).Dispose(), new PinnedMemory(pin));
    }

    /// <summary>Reads the rest of a stream after <paramref name="head"/> into memory, at most <see cref="MediaLimits.MaxBytes"/> in all.</summary>
    /// <exception cref="MediaLimitExceededException">The stream is longer.</exception>
    public static SKData ReadStream(Stream stream, ReadOnlySpan<byte> head, string name, MediaBudget budget, CancellationToken cancellationToken)
    {
        long known = stream.CanSeek ? head.Length + Math.Max(0, stream.Length - stream.Position) : -1;
        if (known >= 0)
        {
            budget.CheckBytes(name, known);
        }

        var memory = new MemoryStream(known is >= 0 and <= int.MaxValue ? (int)known : 0);
        memory.Write(head);
        CopyCapped(stream, memory, head.Length, name, budget, cancellationToken);
        return Wrap(memory.GetBuffer().AsMemory(0, (int)memory.Length));
    }

    /// <summary>Copies a stream into <paramref name="destination"/>, refusing more than <see cref="MediaLimits.MaxBytes"/> in all.</summary>
    /// <exception cref="MediaLimitExceededException">The stream is longer.</exception>
    public static void CopyCapped(Stream source, Stream destination, long already, string name, MediaBudget budget, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long total = already;
            int read;
            while ((read = source.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                total += read;
                if (total > budget.Limits.MaxBytes)
                {
                    budget.CheckBytes(name, total, atLeast: true); // throws, naming the limit
                }

                destination.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Keeps a pin until SkiaSharp releases the data.</summary>
    private sealed class PinnedMemory(MemoryHandle pin) : IDisposable
    {
        private MemoryHandle _pin = pin;

        public void Dispose() => _pin.Dispose();
    }
}
