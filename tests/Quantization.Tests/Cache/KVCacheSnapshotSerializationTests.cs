using System.Buffers;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.Cache.QuantizedKVCacheSnapshotTests;

namespace VidKV.AI.Quantization.Tests.Cache;

public sealed class KVCacheSnapshotSerializationTests
{
    private const string Key = "model=abc;preset=test;media=0123456789abcdef;prompt=[1,2,3]";

    public static TheoryData<string, CacheProfile> AllPresets() => QuantizedKVCacheTests.AllPresets();

    [Theory]
    [MemberData(nameof(AllPresets))]
    public void RoundTrip_GivesBitIdenticalCaches(string preset, CacheProfile profile)
    {
        long live = LiveTensors();
        using (var scope = NewDisposeScope())
        {
            var options = CacheTestData.Small(preset, profile);
            var (snapshot, data) = MakeSnapshot(options, layers: 2, prefix: 14);
            using (snapshot)
            {
                var stream = new MemoryStream();
                snapshot.WriteTo(stream, Key);
                byte[] bytes = stream.ToArray();
                var writer = new ArrayBufferWriter<byte>();
                snapshot.WriteTo(writer, Key);
                Assert.Equal(bytes, writer.WrittenSpan.ToArray());

                stream.Position = 0;
                using var fromStream = KVCacheSnapshot.ReadFrom(stream, Key, options);
                Assert.Equal(bytes.Length, stream.Position);
                using var fromBytes = KVCacheSnapshot.Read(Split(bytes), Key, options);
                foreach (var restored in new[] { fromStream, fromBytes })
                {
                    Assert.Equal(snapshot.Memory, restored.Memory);
                    Assert.Equal(snapshot.Length, restored.Length);
                    Assert.Same(options, restored.Options);
                    var again = new MemoryStream();
                    restored.WriteTo(again, Key);
                    Assert.Equal(bytes, again.ToArray());
                    ForkAndCompare(snapshot, restored, data);
                }
            }
        }

        Assert.Equal(live, LiveTensors());
    }

    [Fact]
    public void CorruptTruncatedOrForeignPayloads_ThrowInvalidSnapshotException_AndLeakNothing()
    {
        var options = CacheTestData.Small("vidkv-1.5/1.66", CacheProfile.Reference);
        byte[] bytes;
        using (var scope = NewDisposeScope())
        {
            var (snapshot, _) = MakeSnapshot(options, layers: 2, prefix: 14);
            using (snapshot)
            {
                var stream = new MemoryStream();
                snapshot.WriteTo(stream, Key);
                bytes = stream.ToArray();
            }
        }

        long live = LiveTensors();
        var messages = new HashSet<string>();

        // Every byte flipped: the magic, the version, the header (its checksum), the tensors (theirs) or a checksum.
        for (int i = 0; i < bytes.Length; i++)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x5A;
            messages.Add(Reject(copy, Key, options, $"byte {i} flipped"));
        }

        Assert.Contains(messages, m => m.Contains("checksum of its header", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("checksum of its tensors", StringComparison.Ordinal));

        // Truncated anywhere, through a seekable stream, bytes, and a stream that cannot tell its length.
        for (int length = 0; length < bytes.Length; length++)
        {
            Reject(bytes.AsSpan(0, length).ToArray(), Key, options, $"truncated to {length} bytes");
            if (length % 7 == 0)
            {
                var stream = new ForwardOnlyStream(new MemoryStream(bytes, 0, length));
                Assert.Throws<InvalidSnapshotException>(() => KVCacheSnapshot.ReadFrom(stream, Key, options));
            }
        }

        // Bytes after the payload.
        Reject(bytes.Concat(new byte[] { 0 }).ToArray(), Key, options, "one byte appended");

        // Another key, another format version, other options.
        Assert.Contains("written for key", Reject(bytes, Key + "x", options, "other key"), StringComparison.Ordinal);
        var version = (byte[])bytes.Clone();
        version[8] = 2;
        Assert.Contains("format version 2", Reject(version, Key, options, "other version"), StringComparison.Ordinal);
        Assert.Contains("GroupSize=4 (expected 8)", Reject(bytes, Key, options with { GroupSize = 8, ResidualLength = 16 }, "other group size"), StringComparison.Ordinal);
        Assert.Contains("Values=Protected (expected Ternary)", Reject(bytes, Key, CacheTestData.Small("vidkv-1.5/1.58", CacheProfile.Reference), "other preset"), StringComparison.Ordinal);
        Assert.Contains("not a VidKV.AI KV cache snapshot", Reject("not a snapshot at all"u8.ToArray(), Key, options, "foreign data"), StringComparison.Ordinal);

        Assert.Equal(live, LiveTensors());

        // The untouched bytes still read (the checks above did not pass by rejecting everything).
        using var fine = KVCacheSnapshot.Read(new ReadOnlySequence<byte>(bytes), Key, options);
        Assert.Equal(14, fine.Length);
    }

    [Fact]
    public void Read_Cancelled_ThrowsAndLeaksNothing()
    {
        var options = CacheTestData.Small("kivi-2", CacheProfile.Compact);
        byte[] bytes;
        using (var scope = NewDisposeScope())
        {
            var (snapshot, _) = MakeSnapshot(options, layers: 1, prefix: 12);
            using (snapshot)
            {
                var stream = new MemoryStream();
                snapshot.WriteTo(stream, Key);
                bytes = stream.ToArray();
            }
        }

        long live = LiveTensors();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => KVCacheSnapshot.Read(new ReadOnlySequence<byte>(bytes), Key, options, cancellationToken: cts.Token));
        Assert.Equal(live, LiveTensors());
    }

    /// <summary>Reads must fail with <see cref="InvalidSnapshotException"/>; returns its message.</summary>
    private static string Reject(byte[] bytes, string key, KVCacheOptions options, string what)
    {
        var ex = Record.Exception(() => KVCacheSnapshot.Read(Split(bytes), key, options).Dispose());
        Assert.True(ex is InvalidSnapshotException, $"{what}: expected InvalidSnapshotException, got {ex?.GetType().Name ?? "no exception"}: {ex?.Message}");
        var fromStream = Record.Exception(() => KVCacheSnapshot.ReadFrom(new MemoryStream(bytes), key, options).Dispose());
        if (bytes.Length > 0 && fromStream is null)
        {
            // Only extra bytes after a valid payload pass through a stream (it reads no further than the payload).
            Assert.Equal("one byte appended", what);
        }
        else
        {
            Assert.True(fromStream is InvalidSnapshotException, $"{what} (stream): got {fromStream?.GetType().Name}: {fromStream?.Message}");
        }

        return ex!.Message;
    }

    /// <summary>A sequence of several segments, as a distributed cache may hand over.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes)
    {
        if (bytes.Length < 3)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var first = new Segment(bytes.AsMemory(0, bytes.Length / 3), 0);
        var last = first.Append(bytes.AsMemory(bytes.Length / 3));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static (KVCacheSnapshot Snapshot, Data[] Data) MakeSnapshot(KVCacheOptions options, int layers, int prefix)
    {
        var data = Enumerable.Range(0, layers).Select(i => Data.Make(prefix, seed: 40 + i)).ToArray();
        var caches = Enumerable.Range(0, layers).Select(_ => new QuantizedKVCache(options)).ToArray();
        try
        {
            for (int i = 0; i < layers; i++)
            {
                caches[i].Prefill(data[i].Keys, data[i].Values, data[i].Importance);
            }

            return (KVCacheSnapshot.Create(caches), data);
        }
        finally
        {
            foreach (var c in caches)
            {
                c.Dispose();
            }
        }
    }

    private static void ForkAndCompare(KVCacheSnapshot expected, KVCacheSnapshot actual, Data[] data)
    {
        var a = expected.Fork();
        var b = actual.Fork();
        try
        {
            for (int layer = 0; layer < a.Length; layer++)
            {
                AssertSame(a[layer], b[layer], data[layer].Query, $"layer {layer} restored");
                foreach (var (k, v, label) in data[layer].Steps())
                {
                    a[layer].Append(k, v);
                    b[layer].Append(k, v);
                    AssertSame(a[layer], b[layer], data[layer].Query, $"layer {layer} restored, {label}");
                }
            }
        }
        finally
        {
            foreach (var c in a.Concat(b))
            {
                c.Dispose();
            }
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long index)
        {
            Memory = memory;
            RunningIndex = index;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>A stream that reads forward only and cannot tell its length (a network stream).</summary>
    private sealed class ForwardOnlyStream(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 5));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
