using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Memory;

/// <summary>
/// The serialized form of one stored prefix, little-endian:
/// <code>
/// magic "VIDKVMEM" | u32 version | i32 header length | header (UTF-8 JSON: key, prefix layout) | u64 XxHash3(magic .. header)
/// | the snapshot (KVCacheSnapshot's own format: versioned, checksummed, written with the same key)
/// </code>
/// </summary>
internal static class VideoMemoryEntryFormat
{
    public const uint Version = 1;
    private const int MaxHeaderBytes = 64 << 20;
    private static readonly byte[] Magic = "VIDKVMEM"u8.ToArray();

    public static byte[] Write(VideoMemoryKey key, VideoMemoryPrefix prefix, KVCacheSnapshot snapshot, CancellationToken cancellationToken)
    {
        var header = JsonSerializer.SerializeToUtf8Bytes(new Header(
            key.Value,
            prefix.PromptIds.ToArray(),
            prefix.Ids.ToArray(),
            prefix.VideoTokens,
            prefix.ImageTokens,
            prefix.VideoSpans.Select(s => new[] { s.Start, s.Length }).ToArray(),
            prefix.NextPosition));
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(Version);
            w.Write(header.Length);
            w.Write(header);
            w.Write(XxHash3.HashToUInt64(stream.GetBuffer().AsSpan(0, (int)stream.Length)));
        }

        snapshot.WriteTo(stream, key.Value, cancellationToken);
        return stream.ToArray();
    }

    /// <summary>Reads an entry; <see cref="InvalidSnapshotException"/> when it is corrupt, truncated, foreign or of another key.</summary>
    public static (VideoMemoryPrefix Prefix, KVCacheSnapshot Snapshot) Read(Stream source, VideoMemoryKey key, KVCacheOptions options, Device? device, CancellationToken cancellationToken)
    {
        Header header;
        try
        {
            using var r = new BinaryReader(source, Encoding.UTF8, leaveOpen: true);
            var start = r.ReadBytes(Magic.Length + 8);
            if (start.Length < Magic.Length + 8 || !start.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            {
                throw new InvalidSnapshotException("The entry is not a VidKV video memory entry (its magic is not VIDKVMEM).");
            }

            uint version = BitConverter.ToUInt32(start, Magic.Length);
            int length = BitConverter.ToInt32(start, Magic.Length + 4);
            if (version != Version)
            {
                throw new InvalidSnapshotException($"The entry has format version {version}; this code reads version {Version}.");
            }

            if (length is < 2 or > MaxHeaderBytes || (source.CanSeek && source.Length - source.Position < length + 8))
            {
                throw new InvalidSnapshotException($"The entry's header length {length} does not fit the entry: it is corrupt or truncated.");
            }

            var json = r.ReadBytes(length);
            if (json.Length != length)
            {
                throw new InvalidSnapshotException("The entry is truncated: its header ends early.");
            }

            var hash = new XxHash3();
            hash.Append(start);
            hash.Append(json);
            if (r.ReadUInt64() != hash.GetCurrentHashAsUInt64())
            {
                throw new InvalidSnapshotException("The entry is corrupt: the checksum of its header does not match.");
            }

            header = JsonSerializer.Deserialize<Header>(json) ?? throw new InvalidSnapshotException("The entry's header is empty.");
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidSnapshotException("The entry is truncated: its header ends early.", e);
        }
        catch (JsonException e)
        {
            throw new InvalidSnapshotException($"The entry's header is not valid: {e.Message}", e);
        }

        if (header.Key != key.Value)
        {
            throw new InvalidSnapshotException($"The entry was written for key '{header.Key}', not '{key.Value}'.");
        }

        VideoMemoryPrefix prefix;
        try
        {
            prefix = new VideoMemoryPrefix(header.PromptIds, header.Ids, header.VideoTokens, header.ImageTokens,
                header.VideoSpans.Select(s => s.Length == 2 ? (s[0], s[1]) : throw new ArgumentException("A video span needs a start and a length.")).ToArray(), header.NextPosition);
            prefix.Validate();
        }
        catch (Exception e) when (e is ArgumentException or NullReferenceException)
        {
            throw new InvalidSnapshotException($"The entry's prefix layout is not valid: {e.Message}", e);
        }

        var snapshot = KVCacheSnapshot.ReadFrom(source, key.Value, options, device, cancellationToken);
        if ((source.CanSeek && source.Position != source.Length) || snapshot.Length != prefix.Ids.Count)
        {
            long trailing = source.CanSeek ? source.Length - source.Position : 0;
            snapshot.Dispose();
            throw new InvalidSnapshotException($"The entry does not hold one snapshot of its prefix's {prefix.Ids.Count} tokens ({trailing} trailing bytes).");
        }

        return (prefix, snapshot);
    }

    private sealed record Header(string Key, int[] PromptIds, int[] Ids, int VideoTokens, int ImageTokens, int[][] VideoSpans, long NextPosition);
}
