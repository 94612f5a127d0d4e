using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Byte-to-levels lookup tables: entry <c>b</c> holds the <see cref="CodePacking.CodesPerByte"/> codes of byte
/// <c>b</c> already mapped to their levels (<c>code·mult + offset</c>, e.g. ternary {-1, 0, 1}, ±1 signs), padded
/// to 8 floats so that one 256-bit load and store unpacks a byte.
/// </summary>
internal static unsafe class CodeTables
{
    /// <summary>Floats per table entry.</summary>
    public const int Stride = 8;

    /// <summary>How far past the last code an unpack may write (the row slack a buffer needs): one 512-bit vector.</summary>
    public const int Overrun = 16;

    private static readonly ConcurrentDictionary<(CodeFormat Format, int Mult, int Offset), float[]> Tables = new();

    /// <summary>The (pinned) table of a format and level mapping.</summary>
    public static float[] Get(CodeFormat format, int mult, int offset) => Tables.GetOrAdd((format, mult, offset), key =>
    {
        int per = CodePacking.CodesPerByte(key.Format), radix = CodePacking.Base(key.Format);
        var table = GC.AllocateArray<float>(256 * Stride, pinned: true);
        for (int b = 0; b < 256; b++)
        {
            int v = b;
            for (int i = 0; i < per; i++)
            {
                table[(b * Stride) + i] = ((v % radix) * key.Mult) + key.Offset;
                v /= radix;
            }
        }

        return table;
    });

    private static readonly ConcurrentDictionary<(CodeFormat Format, int Mult, int Offset), float[]> Levels16 = new();

    /// <summary>
    /// The (pinned) 16 levels of a 1-, 2- or 4-bit format and level mapping, periodic in the code's bits: entry i is the
    /// level of code i mod 2^b, so that a 16-entry permute indexed by a lane's low four bits reads the right level whatever
    /// lies above its code. For <see cref="UnpackRows"/> and <see cref="SimdKernels.ScoresFromCodes7"/>.
    /// </summary>
    public static float[] GetLevels16(CodeFormat format, int mult, int offset) => Levels16.GetOrAdd((format, mult, offset), key =>
    {
        if (key.Format is not (CodeFormat.Bits1 or CodeFormat.Bits2 or CodeFormat.Bits4))
        {
            throw new ArgumentOutOfRangeException(nameof(format), key.Format, "16-entry level tables exist for Bits1, Bits2 and Bits4 codes.");
        }

        var table = Get(key.Format, key.Mult, key.Offset);
        var levels = GC.AllocateArray<float>(16, pinned: true);
        for (int i = 0; i < 16; i++)
        {
            levels[i] = table[(i & ((1 << (int)key.Format) - 1)) * Stride];
        }

        return levels;
    });

    /// <summary>
    /// Writes the levels of the first <paramref name="count"/> codes of a packed row to <paramref name="dst"/>.
    /// The vector paths may write up to <see cref="Overrun"/> floats past <paramref name="count"/> (finite values).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Unpack(byte* src, int count, float* table, float* dst, FusedKernelPath path, int per)
    {
        int bytes = (count + per - 1) / per;
        if (path == FusedKernelPath.Avx512 && per == 8)
        {
            UnpackBits1(src, bytes, table, dst);
            return;
        }

        if (path == FusedKernelPath.Avx512 && per == 4)
        {
            UnpackBits2(src, bytes, table, dst);
            return;
        }

        if (path != FusedKernelPath.Portable)
        {
            // One table entry (a byte's levels) per 256-bit load and store; two bytes per pass.
            int i = 0;
            for (; i + 2 <= bytes; i += 2, dst += 2 * per)
            {
                var a = Vector256.Load(table + (src[i] * Stride));
                var b = Vector256.Load(table + (src[i + 1] * Stride));
                a.Store(dst);
                b.Store(dst + per);
            }

            if (i < bytes)
            {
                Vector256.Load(table + (src[i] * Stride)).Store(dst);
            }

            return;
        }

        for (int i = 0, c = 0; i < bytes; i++)
        {
            float* entry = table + (src[i] * Stride);
            for (int j = 0; j < per && c < count; j++, c++)
            {
                dst[c] = entry[j];
            }
        }
    }

    /// <summary>Whether <see cref="UnpackRows"/> runs here (AVX-512 F and VBMI).</summary>
    public static bool RowsSupported => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512Vbmi.IsSupported;

    /// <summary>
    /// Unpacks <paramref name="rows"/> consecutive packed rows of b-bit codes (b = 1, 2 or 4) into levels, 16 codes per
    /// pass: the eight bytes that hold them are broadcast, one multishift moves each lane's code to its low bits, and a
    /// 16-entry permute maps codes to <paramref name="levels"/>. Row r goes to <c>dst + r·dstStride</c>; a row may be
    /// written up to 15 floats past <paramref name="count"/> (finite levels). Reads no byte past
    /// <c>src + available</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void UnpackRows(byte* src, int rowBytes, int rows, long available, int count, int bits, float* levels, float* dst, int dstStride)
    {
        var control = Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * (uint)bits;
        var mask = Vector512.Create((1u << bits) - 1);
        var table = Vector512.Load(levels);
        for (int r = 0; r < rows; r++, src += rowBytes, available -= rowBytes, dst += dstStride)
        {
            for (int c = 0; c < count; c += 16)
            {
                int offset = c * bits / 8;
                ulong word;
                if (offset + 8 <= available)
                {
                    word = *(ulong*)(src + offset);
                }
                else
                {
                    word = 0;
                    for (int j = 0; offset + j < available && j < 8; j++)
                    {
                        word |= (ulong)src[offset + j] << (8 * j);
                    }
                }

                var codes = Avx512Vbmi.MultiShift(control.AsByte(), Vector512.Create(word)).AsUInt32() & mask;
                Avx512F.PermuteVar16x32(table, codes.AsInt32()).Store(dst + c);
            }
        }
    }

    /// <summary>1-bit codes, 16 per pass: the two bytes broadcast, each lane tests its bit and picks level 1 or level 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void UnpackBits1(byte* src, int bytes, float* table, float* dst)
    {
        var bit = Vector512.Create(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
        var level0 = Vector512.Create(table[0]);
        var level1 = Vector512.Create(table[Stride]);
        int i = 0;
        for (; i + 2 <= bytes; i += 2, dst += 16)
        {
            var set = Vector512.Equals(Vector512.Create((int)*(ushort*)(src + i)) & bit, bit);
            Vector512.ConditionalSelect(set.AsSingle(), level1, level0).Store(dst);
        }

        if (i < bytes)
        {
            var set = Vector512.Equals(Vector512.Create((int)src[i]) & bit, bit);
            Vector512.ConditionalSelect(set.AsSingle(), level1, level0).Store(dst);
        }
    }

    /// <summary>2-bit codes, 16 per pass: the four bytes broadcast, each lane shifts its code down; level = code·mult + offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void UnpackBits2(byte* src, int bytes, float* table, float* dst)
    {
        var shift = Vector512.Create(0u, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var three = Vector512.Create(3u);
        var offset = Vector512.Create(table[0]);
        var mult = Vector512.Create(table[Stride] - table[0]);
        int i = 0;
        for (; i < bytes; i += 4, dst += 16)
        {
            uint word;
            if (i + 4 <= bytes)
            {
                word = *(uint*)(src + i);
            }
            else
            {
                word = 0;
                for (int j = 0; i + j < bytes; j++)
                {
                    word |= (uint)src[i + j] << (8 * j);
                }
            }

            var codes = Avx512F.ShiftRightLogicalVariable(Vector512.Create(word), shift) & three;
            Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(codes.AsInt32()), mult, offset).Store(dst);
        }
    }

    /// <summary>
    /// Exact float16 to float32, lane by lane (bits in the low 16 bits of each lane): the exponent and mantissa moved
    /// into float32's fields and scaled by 2^112 (which also maps subnormals exactly), infinities and NaNs kept, sign
    /// restored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        var magnitude = h & Vector256.Create(0x7fffu);
        var value = (magnitude << 13).AsSingle() * Vector256.Create(5.192296858534828e33f);
        var special = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7c00u));
        value = Vector256.ConditionalSelect(special.AsSingle(), ((magnitude << 13) | Vector256.Create(0x7f800000u)).AsSingle(), value);
        return (value.AsUInt32() | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    /// <summary>Reads element <paramref name="index"/> of a float16, bfloat16, float32 or float64 buffer as float.</summary>
    public static float Read(void* data, ScalarType type, long index) => type switch
    {
        ScalarType.Float16 => (float)((Half*)data)[index],
        ScalarType.BFloat16 => BitConverter.Int32BitsToSingle(((ushort*)data)[index] << 16),
        ScalarType.Float32 => ((float*)data)[index],
        ScalarType.Float64 => (float)((double*)data)[index],
        _ => throw new NotSupportedException($"Element type {type} cannot be read as float; allowed: Float16, BFloat16, Float32, Float64."),
    };

    /// <summary>Converts <paramref name="count"/> consecutive elements starting at <paramref name="index"/> to float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ReadRow(void* data, ScalarType type, long index, int count, float* dst)
    {
        switch (type)
        {
            case ScalarType.Float32:
                new ReadOnlySpan<float>((float*)data + index, count).CopyTo(new Span<float>(dst, count));
                break;
            case ScalarType.Float16:
            {
                Half* h = (Half*)data + index;
                int i = 0;
                // Eight at a time wherever AVX2 runs (AVX-512 processors too: a metadata row is a few dozen values).
                if (Vector256.IsHardwareAccelerated && Avx2.IsSupported)
                {
                    for (; i + 8 <= count; i += 8)
                    {
                        HalfToSingle(Avx2.ConvertToVector256Int32((ushort*)h + i).AsUInt32()).Store(dst + i);
                    }
                }

                for (; i < count; i++)
                {
                    dst[i] = (float)h[i];
                }

                break;
            }

            case ScalarType.BFloat16:
            {
                ushort* b = (ushort*)data + index;
                int i = 0;
                if (Vector256.IsHardwareAccelerated && Avx2.IsSupported)
                {
                    for (; i + 8 <= count; i += 8)
                    {
                        (Avx2.ConvertToVector256Int32(b + i).AsUInt32() << 16).AsSingle().Store(dst + i);
                    }
                }

                for (; i < count; i++)
                {
                    dst[i] = BitConverter.Int32BitsToSingle(b[i] << 16);
                }

                break;
            }

            default:
                for (int i = 0; i < count; i++)
                {
                    dst[i] = Read(data, type, index + i);
                }

                break;
        }
    }
}
