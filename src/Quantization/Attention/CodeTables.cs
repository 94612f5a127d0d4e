using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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

    /// <summary>How far past the last code an unpack may write (the row slack a buffer needs).</summary>
    public const int Overrun = Stride;

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

    /// <summary>
    /// Writes the levels of the first <paramref name="count"/> codes of a packed row to <paramref name="dst"/>.
    /// The vector paths may write up to <see cref="Overrun"/> floats past <paramref name="count"/> (finite values).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Unpack(byte* src, int count, float* table, float* dst, FusedKernelPath path, int per)
    {
        int bytes = (count + per - 1) / per;
        if (path != FusedKernelPath.Portable)
        {
            for (int i = 0; i < bytes; i++)
            {
                Vector256.Load(table + (src[i] * Stride)).Store(dst + (i * per));
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
                for (int i = 0; i < count; i++)
                {
                    dst[i] = (float)h[i];
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
