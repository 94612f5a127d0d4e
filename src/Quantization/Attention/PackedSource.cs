using System.Runtime.CompilerServices;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// One <see cref="QuantizedTensor"/> [B, H, T, C] of a CPU cache as the fused kernels read it: raw pointers to the
/// packed codes and to the metadata its quantizer reads back, and the level mapping of its codes. Valid while the
/// cache holds the tensor (the duration of one attention call).
/// </summary>
internal sealed unsafe class PackedSource
{
    private PackedSource(QuantizedTensor q, int mult, int offset, bool useScale, bool useZero, QuantizationAxis axis, int groupSize)
    {
        Codes = (byte*)Pointer(q.Codes);
        Count = (int)q.Shape[^1];
        Tokens = q.Shape[^2];
        RowBytes = (int)q.Codes.size(-1);
        PerByte = CodePacking.CodesPerByte(q.Format);
        Table = (float*)Unsafe.AsPointer(ref CodeTables.Get(q.Format, mult, offset)[0]);
        TotalBytes = q.Codes.NumberOfElements;
        Bits = q.Format is CodeFormat.Bits1 or CodeFormat.Bits2 or CodeFormat.Bits4 ? (int)q.Format : 0;
        Levels = Bits > 0 ? (float*)Unsafe.AsPointer(ref CodeTables.GetLevels16(q.Format, mult, offset)[0]) : null;
        Axis = axis;
        GroupSize = groupSize;
        if (useScale)
        {
            Scale = Pointer(q.Scale ?? throw new InvalidOperationException("A quantized tensor lacks the scale its quantizer reads."));
            MetaType = q.Scale.dtype;
        }

        if (useZero)
        {
            Zero = Pointer(q.Zero ?? throw new InvalidOperationException("A quantized tensor lacks the zero point its quantizer reads."));
            MetaType = q.Zero.dtype;
        }
    }

    /// <summary>Bytes of the packed codes tensor.</summary>
    public long TotalBytes { get; }

    /// <summary>Bits per code for 1-, 2- and 4-bit codes; 0 otherwise.</summary>
    public int Bits { get; }

    /// <summary>The pinned 16-entry levels table of 1-, 2- and 4-bit codes (<see cref="CodeTables.GetLevels16"/>); null for other codes.</summary>
    public float* Levels { get; }

    /// <summary>Packed codes [B, H, T, RowBytes].</summary>
    public byte* Codes { get; }

    /// <summary>Logical codes per row (C).</summary>
    public int Count { get; }

    /// <summary>Rows per (batch item, head) (T).</summary>
    public long Tokens { get; }

    /// <summary>Bytes per packed row.</summary>
    public int RowBytes { get; }

    /// <summary>Codes per byte.</summary>
    public int PerByte { get; }

    /// <summary>The pinned byte-to-levels table.</summary>
    public float* Table { get; }

    /// <summary>Scales read back, or null.</summary>
    public void* Scale { get; }

    /// <summary>Zero points read back, or null.</summary>
    public void* Zero { get; }

    /// <summary>Storage type of the metadata.</summary>
    public ScalarType MetaType { get; } = ScalarType.Float32;

    /// <summary>Grouping axis of the metadata.</summary>
    public QuantizationAxis Axis { get; }

    /// <summary>Group size.</summary>
    public int GroupSize { get; }

    /// <summary>Per-channel groups per (batch item, head), or channel groups per token.</summary>
    public long GroupsPerRow => Axis == QuantizationAxis.PerChannel ? Tokens / GroupSize : Count / GroupSize;

    /// <summary>The packed row of token <paramref name="t"/> of (batch item, head) <paramref name="bh"/>.</summary>
    public byte* Row(long bh, long t) => Codes + (((bh * Tokens) + t) * RowBytes);

    /// <summary>
    /// Unpacks rows <paramref name="t"/> .. <paramref name="t"/> + <paramref name="rows"/> − 1 of (batch item, head)
    /// <paramref name="bh"/>, row r to <c>dst + r·dstStride</c> (each may be written <see cref="CodeTables.Overrun"/> floats
    /// past its codes): many rows per call through <see cref="CodeTables.UnpackRows"/> where it runs, else row by row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void UnpackRows(long bh, long t, int rows, float* dst, int dstStride, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512 && Bits > 0 && CodeTables.RowsSupported)
        {
            byte* start = Row(bh, t);
            CodeTables.UnpackRows(start, RowBytes, rows, TotalBytes - (start - Codes), Count, Bits, Levels, dst, dstStride);
            return;
        }

        for (int r = 0; r < rows; r++)
        {
            Unpack(bh, t + r, dst + (r * dstStride), path);
        }
    }

    /// <summary>Unpacks a row's levels into <paramref name="dst"/> (may write <see cref="CodeTables.Overrun"/> floats past the row).</summary>
    public void Unpack(long bh, long t, float* dst, FusedKernelPath path) => CodeTables.Unpack(Row(bh, t), Count, Table, dst, path, PerByte);

    /// <summary>
    /// Writes the scale and zero point of per-channel group <paramref name="group"/> of (batch item, head) <paramref name="bh"/>
    /// (<see cref="Count"/> values each) to <paramref name="scale"/> and <paramref name="zero"/>, when held.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ChannelGroupMeta(long bh, long group, float* scale, float* zero)
    {
        long index = ((bh * (Tokens / GroupSize)) + group) * Count;
        if (Scale != null)
        {
            CodeTables.ReadRow(Scale, MetaType, index, Count, scale);
        }

        if (Zero != null)
        {
            CodeTables.ReadRow(Zero, MetaType, index, Count, zero);
        }
    }

    /// <summary>Applies token <paramref name="t"/>'s per-token scale and zero point to its unpacked levels in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void DequantizeTokenRow(long bh, long t, float* levels)
    {
        if (Scale == null && Zero == null)
        {
            return;
        }

        int groups = Count / GroupSize;
        long index = ((bh * Tokens) + t) * groups;
        for (int g = 0; g < groups; g++)
        {
            float s = Scale == null ? 1f : CodeTables.Read(Scale, MetaType, index + g);
            float z = Zero == null ? 0f : CodeTables.Read(Zero, MetaType, index + g);
            float* x = levels + (g * GroupSize);
            for (int i = 0; i < GroupSize; i++)
            {
                x[i] = (x[i] * s) + z;
            }
        }
    }

    /// <summary>Asymmetric codes: level = code, read back as code·s + mn.</summary>
    public static PackedSource? Asymmetric(QuantizedTensor? q, QuantizationAxis axis, int groupSize)
        => q is null ? null : new PackedSource(q, 1, 0, useScale: true, useZero: true, axis, groupSize);

    /// <summary>Sign codes: level {0, 1} or {-1, +1}, times the group's scale, plus the stored (zero) zero point if any.</summary>
    public static PackedSource? Sign(QuantizedTensor? q, SignReconstruction reconstruction, int groupSize)
        => q is null ? null : reconstruction == SignReconstruction.ZeroOrScale
            ? new PackedSource(q, 1, 0, useScale: true, useZero: q.Zero is not null, QuantizationAxis.PerChannel, groupSize)
            : new PackedSource(q, 2, -1, useScale: true, useZero: q.Zero is not null, QuantizationAxis.PerChannel, groupSize);

    /// <summary>Ternary codes: level {-1, 0, +1}, times the group's scale when the quantizer is scaled.</summary>
    public static PackedSource Ternary(QuantizedTensor q, bool scaled, QuantizationAxis axis, int groupSize)
        => new(q, 1, -1, useScale: scaled, useZero: false, axis, groupSize);

    /// <summary>The address of a contiguous CPU tensor's first element.</summary>
    public static void* Pointer(Tensor t)
    {
        if (!t.is_contiguous())
        {
            throw new InvalidOperationException("Fused attention reads contiguous cache tensors only.");
        }

        fixed (byte* p = t.bytes)
        {
            return p;
        }
    }
}
