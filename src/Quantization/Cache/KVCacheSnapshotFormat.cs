using System.Globalization;
using System.IO.Hashing;
using System.Text;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// The serialized form of a <see cref="KVCacheSnapshot"/>, little-endian:
/// <code>
/// magic "VIDKVSNP" | u32 format version | i32 header length | header | u64 XxHash3(magic .. header)
/// | payload (every tensor's raw bytes, in header order) | u64 XxHash3(magic .. payload)
/// header: key | options | i32 layers | per layer: geometry, flush count, blocks, residual, scores | i64 payload length
/// </code>
/// The header is checked before anything is allocated; the tensors are built only after the whole payload checked.
/// </summary>
internal static class KVCacheSnapshotFormat
{
    /// <summary>The version this code writes and reads; raise it whenever the layout or the meaning of a field changes.</summary>
    public const int Version = 1;

    private const int MaxHeaderBytes = 64 << 20;
    private const int MaxRank = 8;
    private const int CopyChunk = 1 << 20;
    private static readonly byte[] Magic = "VIDKVSNP"u8.ToArray();
    private static readonly ScalarType[] TensorTypes = { ScalarType.Byte, ScalarType.Int64, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float32 };

    public static void Write(KVCacheSnapshot snapshot, Stream destination, string key, CancellationToken cancellationToken)
    {
        CheckEndianness();
        var tensors = new List<Tensor>();
        using var header = new MemoryStream();
        using (var w = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write((uint)Version);
            w.Write(0); // header length, patched below
            WriteString(w, key);
            WriteString(w, DescribeOptions(snapshot.Options));
            w.Write(snapshot.Layers.Count);
            foreach (var layer in snapshot.Layers)
            {
                WriteLayer(w, layer, tensors);
            }

            w.Write(tensors.Sum(t => t.NumberOfElements * t.ElementSize));
        }

        var bytes = header.GetBuffer().AsSpan(0, (int)header.Length);
        BitConverter.TryWriteBytes(bytes.Slice(Magic.Length + 4, 4), (int)header.Length - Magic.Length - 8);
        var hash = new XxHash3();
        hash.Append(bytes);
        destination.Write(bytes);
        Span<byte> word = stackalloc byte[8];
        BitConverter.TryWriteBytes(word, hash.GetCurrentHashAsUInt64());
        destination.Write(word);
        hash.Append(word);

        foreach (var t in tensors)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var cpu = t.device_type == TorchSharp.DeviceType.CPU && t.is_contiguous() ? t : t.cpu().contiguous();
            ReadOnlySpan<byte> data = cpu.bytes;
            hash.Append(data);
            destination.Write(data);
        }

        BitConverter.TryWriteBytes(word, hash.GetCurrentHashAsUInt64());
        destination.Write(word);
    }

    public static KVCacheSnapshot Read(Stream source, string key, KVCacheOptions options, Device? device, CancellationToken cancellationToken)
    {
        CheckEndianness();
        var hash = new XxHash3();
        byte[] header;
        try
        {
            header = ReadHeader(source, hash);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidSnapshotException("The KV cache snapshot is truncated: its header ends early.", ex);
        }

        var layout = Parse(header, key, options);
        if (source.CanSeek && source.Length - source.Position < layout.PayloadBytes + 8)
        {
            throw new InvalidSnapshotException(
                $"The KV cache snapshot is truncated: its header declares {layout.PayloadBytes + 8} more bytes, {source.Length - source.Position} follow.");
        }

        var tensors = new List<Tensor>(layout.Tensors.Count);
        try
        {
            byte[] chunk = new byte[CopyChunk];
            foreach (var spec in layout.Tensors)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var t = empty(spec.Shape, spec.Type).DetachFromDisposeScope();
                tensors.Add(t);
                var target = t.bytes;
                for (int offset = 0; offset < target.Length; offset += CopyChunk)
                {
                    var part = target.Slice(offset, Math.Min(CopyChunk, target.Length - offset));
                    source.ReadExactly(part);
                    hash.Append(part);
                }
            }

            Span<byte> word = stackalloc byte[8];
            source.ReadExactly(word);
            if (BitConverter.ToUInt64(word) != hash.GetCurrentHashAsUInt64())
            {
                throw new InvalidSnapshotException("The KV cache snapshot is corrupt: the checksum of its tensors does not match.");
            }

            if (device is not null && device.type != TorchSharp.DeviceType.CPU)
            {
                for (int i = 0; i < tensors.Count; i++)
                {
                    var moved = tensors[i].to(device).DetachFromDisposeScope();
                    tensors[i].Dispose();
                    tensors[i] = moved;
                }
            }

            return Build(layout, options, tensors);
        }
        catch (Exception ex)
        {
            foreach (var t in tensors)
            {
                t.Dispose();
            }

            if (ex is EndOfStreamException)
            {
                throw new InvalidSnapshotException("The KV cache snapshot is truncated: its tensors end early.", ex);
            }

            throw;
        }
    }

    /// <summary>Every option that changes what a cache stores or how it reads it back, in a fixed order.</summary>
    public static string DescribeOptions(KVCacheOptions o)
    {
        string D(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        return string.Join(";", new[]
        {
            $"GroupSize={o.GroupSize}", $"ResidualLength={o.ResidualLength}", $"KeyBits={D(o.KeyBits)}", $"OutlierBits={o.OutlierBits}",
            $"OneBitKeys={o.OneBitKeys}", $"SignReconstruction={o.SignReconstruction}", $"ChannelStatistic={o.ChannelStatistic}",
            $"OutlierThreshold={D(o.OutlierThreshold)}", $"Values={o.Values}", $"ValueBits={o.ValueBits}", $"ValueAxis={o.ValueAxis}",
            $"TernaryGamma={D(o.TernaryGamma)}", $"ScaledTernary={o.ScaledTernary}", $"TernaryPacking={o.TernaryPacking}",
            $"ProtectedFraction={D(o.ProtectedFraction)}", $"Flush={o.Flush}", $"ReferenceMetadata={o.ReferenceMetadata}",
            $"MetadataType={o.MetadataType}", $"ResidualType={(o.ResidualType is { } r ? r.ToString() : "input")}",
        });
    }

    private static void CheckEndianness()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("KV cache snapshots are read and written on little-endian machines only.");
        }
    }

    private static void WriteLayer(BinaryWriter w, QuantizedKVCacheSnapshot layer, List<Tensor> tensors)
    {
        var s = layer.Shape;
        w.Write(s.Batch);
        w.Write(s.Heads);
        w.Write(s.KeyDim);
        w.Write(s.ValueDim);
        w.Write((int)s.DType);
        w.Write(layer.FlushCount);
        w.Write(layer.Blocks.Count);
        foreach (var b in layer.Blocks)
        {
            w.Write(b.Start);
            WriteShape(w, b.Keys.Shape);
            WriteTensor(w, b.Keys.OutlierChannels, tensors);
            WriteTensor(w, b.Keys.EasyChannels, tensors);
            WriteQuantized(w, b.Keys.Outliers, tensors);
            WriteQuantized(w, b.Keys.Easy, tensors);
            WriteShape(w, b.Values.Shape);
            WriteTensor(w, b.Values.ProtectedTokens, tensors);
            WriteQuantized(w, b.Values.Protected, tensors);
            WriteQuantized(w, b.Values.Rest, tensors);
        }

        WriteTensor(w, layer.ResidualKeys, tensors);
        WriteTensor(w, layer.ResidualValues, tensors);
        WriteTensor(w, layer.RetainedScores, tensors);
    }

    private static void WriteQuantized(BinaryWriter w, QuantizedTensor? q, List<Tensor> tensors)
    {
        w.Write(q is not null);
        if (q is null)
        {
            return;
        }

        w.Write((int)q.Format);
        WriteShape(w, q.Shape);
        WriteTensor(w, q.Codes, tensors);
        WriteTensor(w, q.Scale, tensors);
        WriteTensor(w, q.Zero, tensors);
    }

    private static void WriteTensor(BinaryWriter w, Tensor? t, List<Tensor> tensors)
    {
        w.Write(t is not null);
        if (t is null)
        {
            return;
        }

        w.Write((int)t.dtype);
        WriteShape(w, t.shape);
        tensors.Add(t);
    }

    private static void WriteShape(BinaryWriter w, long[] shape)
    {
        w.Write(shape.Length);
        foreach (long d in shape)
        {
            w.Write(d);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write(bytes.Length);
        w.Write(bytes);
    }

    /// <summary>Reads magic, version and header, and checks the header's checksum; returns the header's fields.</summary>
    private static byte[] ReadHeader(Stream source, XxHash3 hash)
    {
        Span<byte> prefix = stackalloc byte[16];
        source.ReadExactly(prefix);
        if (!prefix[..8].SequenceEqual(Magic))
        {
            throw new InvalidSnapshotException("The data is not a VidKV.AI KV cache snapshot (its first bytes are not the snapshot magic).");
        }

        uint version = BitConverter.ToUInt32(prefix[8..12]);
        if (version != Version)
        {
            throw new InvalidSnapshotException($"The KV cache snapshot has format version {version}; this library reads version {Version} only.");
        }

        int length = BitConverter.ToInt32(prefix[12..16]);
        if (length is <= 0 or > MaxHeaderBytes)
        {
            throw new InvalidSnapshotException($"The KV cache snapshot is corrupt: it declares a {length}-byte header (allowed: 1 to {MaxHeaderBytes}).");
        }

        if (source.CanSeek && length > source.Length - source.Position)
        {
            throw new InvalidSnapshotException($"The KV cache snapshot is truncated: it declares a {length}-byte header, {source.Length - source.Position} bytes follow.");
        }

        var header = new byte[length];
        source.ReadExactly(header);
        Span<byte> word = stackalloc byte[8];
        source.ReadExactly(word);
        hash.Append(prefix);
        hash.Append(header);
        if (BitConverter.ToUInt64(word) != hash.GetCurrentHashAsUInt64())
        {
            throw new InvalidSnapshotException("The KV cache snapshot is corrupt: the checksum of its header does not match.");
        }

        hash.Append(word);
        return header;
    }

    private static Layout Parse(byte[] header, string key, KVCacheOptions options)
    {
        var layout = new Layout();
        try
        {
            using var r = new BinaryReader(new MemoryStream(header, writable: false), Encoding.UTF8);
            string writtenKey = ReadString(r);
            if (!string.Equals(writtenKey, key, StringComparison.Ordinal))
            {
                throw new InvalidSnapshotException($"The KV cache snapshot was written for key '{Shorten(writtenKey)}', not for '{Shorten(key)}'.");
            }

            CheckOptions(ReadString(r), options);
            int count = r.ReadInt32();
            if (count is <= 0 or > 100_000)
            {
                throw Corrupt($"{count} layers");
            }

            for (int i = 0; i < count; i++)
            {
                layout.Layers.Add(ParseLayer(r, layout, i));
            }

            layout.PayloadBytes = r.ReadInt64();
            if (r.BaseStream.Position != header.Length)
            {
                throw Corrupt($"{header.Length - r.BaseStream.Position} bytes after the header's fields");
            }
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidSnapshotException("The KV cache snapshot is corrupt: its header's fields end early.", ex);
        }
        catch (OverflowException ex)
        {
            throw new InvalidSnapshotException("The KV cache snapshot is corrupt: its header describes tensors too large to hold.", ex);
        }

        long sum = 0;
        foreach (var spec in layout.Tensors)
        {
            sum += spec.Bytes; // each below 2^31, and fewer than 2^31 of them
        }

        if (sum != layout.PayloadBytes)
        {
            throw Corrupt($"a payload of {layout.PayloadBytes} bytes where its tensors hold {sum}");
        }

        long length = layout.Layers[0].Length;
        int bad = layout.Layers.FindIndex(l => l.Length != length);
        if (bad >= 0)
        {
            throw Corrupt($"layer {bad} holding {layout.Layers[bad].Length} tokens where layer 0 holds {length}");
        }

        return layout;
    }

    private static LayerSpec ParseLayer(BinaryReader r, Layout layout, int index)
    {
        long batch = r.ReadInt64(), heads = r.ReadInt64(), keyDim = r.ReadInt64(), valueDim = r.ReadInt64();
        var dtype = (ScalarType)r.ReadInt32();
        if (batch <= 0 || heads <= 0 || keyDim <= 0 || valueDim <= 0 || batch * heads > (1L << 30) || keyDim > (1L << 20) || valueDim > (1L << 20)
            || dtype is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32))
        {
            throw Corrupt($"layer {index} geometry B={batch}, H={heads}, D={keyDim}, Dv={valueDim}, {dtype}");
        }

        var layer = new LayerSpec { Shape = new CacheShape(batch, heads, keyDim, valueDim, dtype), FlushCount = r.ReadInt32() };
        int blocks = r.ReadInt32();
        if (blocks < 0 || blocks > 1_000_000 || layer.FlushCount < 0)
        {
            throw Corrupt($"layer {index} with {blocks} blocks and {layer.FlushCount} flushes");
        }

        long position = 0;
        for (int i = 0; i < blocks; i++)
        {
            var block = new BlockSpec
            {
                Start = r.ReadInt64(),
                KeyShape = ReadShape(r),
                OutlierChannels = ReadTensor(r, layout) ?? throw Corrupt("a block without its outlier channel list"),
                EasyChannels = ReadTensor(r, layout) ?? throw Corrupt("a block without its easy channel list"),
                Outliers = ReadQuantized(r, layout),
                Easy = ReadQuantized(r, layout),
                ValueShape = ReadShape(r),
                ProtectedTokens = ReadTensor(r, layout),
                Protected = ReadQuantized(r, layout),
                Rest = ReadQuantized(r, layout) ?? throw Corrupt("a block without values"),
            };
            long tokens = block.KeyShape.Length == 4 ? block.KeyShape[2] : -1;
            if (block.Start != position || tokens <= 0
                || !block.KeyShape.SequenceEqual(new[] { batch, heads, tokens, keyDim })
                || !block.ValueShape.SequenceEqual(new[] { batch, heads, tokens, valueDim }))
            {
                throw Corrupt($"layer {index} block {i} at {block.Start} with keys [{string.Join(", ", block.KeyShape)}] and values [{string.Join(", ", block.ValueShape)}]");
            }

            position += tokens;
            layer.Blocks.Add(block);
        }

        layer.ResidualKeys = ReadTensor(r, layout);
        layer.ResidualValues = ReadTensor(r, layout);
        layer.Scores = ReadTensor(r, layout);
        long residual = layer.ResidualKeys?.Shape[2] ?? 0;
        bool residualOk = layer.ResidualKeys is null
            ? layer.ResidualValues is null
            : layer.ResidualValues is not null
              && layer.ResidualKeys.Shape.SequenceEqual(new[] { batch, heads, residual, keyDim })
              && layer.ResidualValues.Shape.SequenceEqual(new[] { batch, heads, residual, valueDim })
              && IsFloat(layer.ResidualKeys.Type) && layer.ResidualValues.Type == layer.ResidualKeys.Type;
        if (!residualOk || (layer.Scores is not null && (layer.Scores.Shape.Length != 2 || layer.Scores.Shape[0] != batch || layer.Scores.Type != ScalarType.Float32)))
        {
            throw Corrupt($"layer {index}'s residual or scores");
        }

        layer.Length = position + residual;
        if (layer.Length == 0)
        {
            throw Corrupt($"layer {index} holding no tokens");
        }

        return layer;
    }

    private static QuantizedSpec? ReadQuantized(BinaryReader r, Layout layout)
    {
        if (!r.ReadBoolean())
        {
            return null;
        }

        var format = (CodeFormat)r.ReadInt32();
        if (!Enum.IsDefined(format))
        {
            throw Corrupt($"code format {(int)format}");
        }

        var spec = new QuantizedSpec
        {
            Format = format,
            Shape = ReadShape(r),
            Codes = ReadTensor(r, layout) ?? throw Corrupt("quantized codes missing"),
            Scale = ReadTensor(r, layout),
            Zero = ReadTensor(r, layout),
        };
        if (spec.Codes.Type != ScalarType.Byte || (spec.Scale is not null && !IsFloat(spec.Scale.Type)) || (spec.Zero is not null && !IsFloat(spec.Zero.Type)))
        {
            throw Corrupt("quantized codes or metadata of the wrong type");
        }

        return spec;
    }

    private static TensorSpec? ReadTensor(BinaryReader r, Layout layout)
    {
        if (!r.ReadBoolean())
        {
            return null;
        }

        var type = (ScalarType)r.ReadInt32();
        if (!TensorTypes.Contains(type))
        {
            throw Corrupt($"a tensor of type {(int)type}");
        }

        var spec = new TensorSpec(type, ReadShape(r), layout.Tensors.Count);
        long elements = 1;
        foreach (long d in spec.Shape)
        {
            elements = d <= (1L << 40) ? checked(elements * d) : throw Corrupt($"a tensor dimension of {d}");
        }

        spec.Bytes = checked(elements * (type switch { ScalarType.Byte => 1, ScalarType.Int64 => 8, ScalarType.Float32 => 4, _ => 2 }));
        if (spec.Bytes > int.MaxValue)
        {
            throw Corrupt($"a tensor of {spec.Bytes} bytes");
        }

        layout.Tensors.Add(spec);
        return spec;
    }

    private static long[] ReadShape(BinaryReader r)
    {
        int rank = r.ReadInt32();
        if (rank is < 1 or > MaxRank)
        {
            throw Corrupt($"a shape of rank {rank}");
        }

        var shape = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            shape[i] = r.ReadInt64();
            if (shape[i] < 0)
            {
                throw Corrupt($"a dimension of {shape[i]}");
            }
        }

        return shape;
    }

    private static string ReadString(BinaryReader r)
    {
        int length = r.ReadInt32();
        if (length < 0 || length > r.BaseStream.Length - r.BaseStream.Position)
        {
            throw Corrupt($"a string of {length} bytes");
        }

        return Encoding.UTF8.GetString(r.ReadBytes(length));
    }

    private static void CheckOptions(string written, KVCacheOptions options)
    {
        string expected = DescribeOptions(options);
        if (written == expected)
        {
            return;
        }

        var have = written.Split(';');
        var want = expected.Split(';');
        string difference = have.Length == want.Length
            ? string.Join(", ", have.Zip(want).Where(p => p.First != p.Second).Select(p => $"{p.First} (expected {p.Second.Split('=')[^1]})"))
            : Shorten(written);
        throw new InvalidSnapshotException($"The KV cache snapshot was written with other cache options: {difference}.");
    }

    private static QuantizedKVCacheSnapshot BuildLayer(LayerSpec spec, KVCacheOptions options, List<Tensor> t)
    {
        Tensor? At(TensorSpec? s) => s is null ? null : t[s.Index];
        QuantizedTensor? Q(QuantizedSpec? q) => q is null ? null : new QuantizedTensor(t[q.Codes.Index], q.Format, q.Shape, At(q.Scale), At(q.Zero));
        var blocks = spec.Blocks.Select(b => new QuantizedBlock(
            b.Start,
            new QuantizedKeys(b.KeyShape, t[b.OutlierChannels.Index], t[b.EasyChannels.Index], Q(b.Outliers), Q(b.Easy)),
            new QuantizedValues(b.ValueShape, At(b.ProtectedTokens), Q(b.Protected), Q(b.Rest)!))).ToArray();
        return new QuantizedKVCacheSnapshot(options, spec.Shape, blocks, At(spec.ResidualKeys), At(spec.ResidualValues), At(spec.Scores), spec.FlushCount);
    }

    private static KVCacheSnapshot Build(Layout layout, KVCacheOptions options, List<Tensor> tensors)
        => new(layout.Layers.Select(l => BuildLayer(l, options, tensors)).ToArray());

    private static bool IsFloat(ScalarType t) => t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32;

    private static InvalidSnapshotException Corrupt(string what) => new($"The KV cache snapshot is corrupt: its header describes {what}.");

    private static string Shorten(string s) => s.Length <= 200 ? s : string.Concat(s.AsSpan(0, 200), "...");

    private sealed class Layout
    {
        public List<LayerSpec> Layers { get; } = new();

        public List<TensorSpec> Tensors { get; } = new();

        public long PayloadBytes { get; set; }
    }

    private sealed class LayerSpec
    {
        public CacheShape Shape { get; init; }

        public int FlushCount { get; init; }

        public List<BlockSpec> Blocks { get; } = new();

        public TensorSpec? ResidualKeys { get; set; }

        public TensorSpec? ResidualValues { get; set; }

        public TensorSpec? Scores { get; set; }

        public long Length { get; set; }
    }

    private sealed class BlockSpec
    {
        public long Start { get; init; }

        public required long[] KeyShape { get; init; }

        public required TensorSpec OutlierChannels { get; init; }

        public required TensorSpec EasyChannels { get; init; }

        public QuantizedSpec? Outliers { get; init; }

        public QuantizedSpec? Easy { get; init; }

        public required long[] ValueShape { get; init; }

        public TensorSpec? ProtectedTokens { get; init; }

        public QuantizedSpec? Protected { get; init; }

        public required QuantizedSpec Rest { get; init; }
    }

    private sealed class QuantizedSpec
    {
        public CodeFormat Format { get; init; }

        public required long[] Shape { get; init; }

        public required TensorSpec Codes { get; init; }

        public TensorSpec? Scale { get; init; }

        public TensorSpec? Zero { get; init; }
    }

    private sealed record TensorSpec(ScalarType Type, long[] Shape, int Index)
    {
        public long Bytes { get; set; }
    }
}
