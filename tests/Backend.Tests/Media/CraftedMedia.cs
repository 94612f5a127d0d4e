using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary>Media written byte by byte: headers that declare sizes their data do not have, and process-memory readings.</summary>
internal static class CraftedMedia
{
    /// <summary>
    /// A PNG of exactly <paramref name="totalBytes"/> bytes whose header declares <paramref name="width"/> x
    /// <paramref name="height"/> RGB pixels: IHDR, a few compressed zero bytes in IDAT, a tEXt chunk as padding, IEND.
    /// </summary>
    public static byte[] Png(int width, int height, int totalBytes = 254)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // colour type RGB
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            z.Write(new byte[64]);
        }

        var idat = compressed.ToArray();
        int fixedBytes = 8 + (12 + 13) + (12 + idat.Length) + 12;
        int text = totalBytes - fixedBytes - 12;
        if (text < 8)
        {
            throw new ArgumentOutOfRangeException(nameof(totalBytes), $"A crafted PNG needs at least {fixedBytes + 20} bytes.");
        }

        var comment = Encoding.ASCII.GetBytes("Comment\0" + new string('x', text - 8));
        using var png = new MemoryStream();
        png.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "tEXt", comment);
        Chunk(png, "IDAT", idat);
        Chunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    /// <summary>A one-frame GIF whose screen and frame declare <paramref name="width"/> x <paramref name="height"/>, with 1 pixel of data.</summary>
    public static byte[] Gif(int width, int height)
    {
        using var gif = new MemoryStream();
        gif.Write("GIF89a"u8);
        Span<byte> size = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(size, (ushort)width);
        BinaryPrimitives.WriteUInt16LittleEndian(size[2..], (ushort)height);
        gif.Write(size);
        gif.Write(new byte[] { 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF }); // 2-colour global table: black, white
        gif.WriteByte(0x2C);
        gif.Write(new byte[4]); // left, top
        gif.Write(size);
        gif.WriteByte(0);
        gif.Write(new byte[] { 0x02, 0x02, 0x44, 0x01, 0x00 }); // LZW: one pixel
        gif.WriteByte(0x3B);
        return gif.ToArray();
    }

    /// <summary>Inserts a comment extension of about <paramref name="bytes"/> bytes after a GIF's global colour table.</summary>
    public static void WriteGifWithComment(string source, string destination, long bytes)
    {
        var gif = File.ReadAllBytes(source);
        int flags = gif[10];
        int afterTable = 13 + ((flags & 0x80) != 0 ? 3 * (1 << ((flags & 7) + 1)) : 0);
        using var output = new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        output.Write(gif, 0, afterTable);
        output.Write(new byte[] { 0x21, 0xFE });
        var block = new byte[256];
        block[0] = 255;
        for (long written = 0; written < bytes; written += 255)
        {
            output.Write(block);
        }

        output.WriteByte(0);
        output.Write(gif, afterTable, gif.Length - afterTable);
    }

    /// <summary>Resets the process's peak resident memory (Linux: /proc/self/clear_refs); false where that is not possible.</summary>
    public static bool ResetPeakMemory()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The process's resident memory now and at its peak (VmRSS, VmHWM), in bytes.</summary>
    public static (long Current, long Peak) ResidentMemory()
    {
        long current = 0, peak = 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                current = Kib(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kib(line);
            }
        }

        return (current, peak);

        static long Kib(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Names of this process's child processes that are still running.</summary>
    public static IReadOnlyList<string> ChildProcesses()
    {
        int self = Environment.ProcessId;
        var names = new List<string>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out _))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int close = stat.LastIndexOf(')');
                var fields = stat[(close + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) == self && fields[0] != "Z")
                {
                    names.Add(stat[(stat.IndexOf('(') + 1)..close]);
                }
            }
            catch (IOException)
            {
                // exited meanwhile
            }
        }

        return names;
    }

    /// <summary>Makes a named pipe (mkfifo).</summary>
    public static void Fifo(string path)
    {
        using var process = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"mkfifo {path} failed ({process.ExitCode}).");
        }
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        png.Write(length);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(length, Crc32(typed));
        png.Write(length);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
            }
        }

        return ~crc;
    }
}
