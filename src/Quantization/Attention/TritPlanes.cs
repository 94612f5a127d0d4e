using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Base-3 packed ternary codes (<see cref="Packing.CodeFormat.Trits"/>: channel c of a row is digit c mod 5 of byte
/// c / 5) decoded many bytes at a time with AVX-512 VBMI byte permutes: a run of packed bytes becomes five digit planes
/// (plane k holds digit k of every byte, as the signed level code − 1), 64 bytes per three instructions a plane, where a
/// byte-table unpack costs a load and a store per byte. Levels are then read back digit-major: slot k·S + i of a row is channel
/// 5i + k, S = the row's bytes rounded up to whole 16-lane vectors.
/// </summary>
internal static unsafe class TritPlanes
{
    /// <summary>Widest packed row the digit-major layout takes (a digit's slots are one to four 16-lane vectors).</summary>
    public const int MaxRowBytes = 64;

    // Five 256-entry tables: entry b of table k is digit k of byte b, minus one, as a signed byte (bytes 243-255 never occur
    // in packed trits; their entries are finite all the same).
    private static readonly byte[] Tables = Build();

    /// <summary>Whether this processor runs the decoder (AVX-512 F, BW and VBMI).</summary>
    public static bool IsSupported => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported && Avx512Vbmi.IsSupported;

    /// <summary>
    /// Decodes <paramref name="count"/> packed bytes into five planes <paramref name="planeStride"/> bytes apart: plane k,
    /// byte j = digit k of <c>src[j]</c> − 1. Writes whole 64-byte runs (up to 63 bytes past <paramref name="count"/>,
    /// within the stride when it leaves that slack) and never reads past <c>src + count</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(byte* src, int count, sbyte* planes, int planeStride)
    {
        int full = count & ~63, rest = count - full;
        byte* tail = stackalloc byte[64];
        if (rest > 0)
        {
            new Span<byte>(tail, 64).Clear();
            Buffer.MemoryCopy(src + full, tail, 64, rest);
        }

        fixed (byte* table = Tables)
        {
            for (int k = 0; k < 5; k++)
            {
                byte* t = table + (k * 256);
                var t0 = Vector512.Load(t);
                var t1 = Vector512.Load(t + 64);
                var t2 = Vector512.Load(t + 128);
                var t3 = Vector512.Load(t + 192);
                byte* dst = (byte*)planes + (k * planeStride);
                for (int i = 0; i < full; i += 64)
                {
                    Lookup(Vector512.Load(src + i), t0, t1, t2, t3).Store(dst + i);
                }

                if (rest > 0)
                {
                    Lookup(Vector512.Load(tail), t0, t1, t2, t3).Store(dst + full);
                }
            }
        }
    }

    /// <summary>
    /// Writes the levels of <paramref name="tokens"/> rows of <paramref name="rowBytes"/> packed bytes from the planes as
    /// float32, digit-major: row t at <c>dst + t·dstStride</c>, slot k·S + i = digit k of byte i, with S =
    /// <see cref="DigitSlots"/> (so that every store is a whole, aligned 16-lane vector when the row is). Slots i ≥
    /// <paramref name="rowBytes"/> hold finite values of neighbouring bytes (they map to no channel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Levels(sbyte* planes, int planeStride, int rowBytes, int tokens, float* dst, int dstStride)
    {
        int slots = DigitSlots(rowBytes);
        for (int t = 0; t < tokens; t++, dst += dstStride)
        {
            sbyte* row = planes + (t * rowBytes);
            for (int k = 0; k < 5; k++)
            {
                sbyte* p = row + (k * planeStride);
                float* d = dst + (k * slots);
                for (int h = 0; h < slots; h += 16)
                {
                    Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p + h))).Store(d + h);
                }
            }
        }
    }

    /// <summary>Slots per digit in a digit-major row of <paramref name="rowBytes"/> packed bytes (whole 16-lane vectors).</summary>
    public static int DigitSlots(int rowBytes) => SimdKernels.Pad(rowBytes);

    /// <summary>Floats of a digit-major row of <paramref name="rowBytes"/> packed bytes.</summary>
    public static int RowFloats(int rowBytes) => 5 * DigitSlots(rowBytes);

    /// <summary>Bytes between digit planes for <paramref name="tokens"/> rows: the rows and the slack of the last 16-byte reads.</summary>
    public static int PlaneStride(int rowBytes, int tokens) => (tokens * rowBytes) + 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Lookup(Vector512<byte> x, Vector512<byte> t0, Vector512<byte> t1, Vector512<byte> t2, Vector512<byte> t3)
    {
        // Index bits 0-6 pick one of 128 entries of (t0, t1) or (t2, t3); bit 7 picks the pair.
        var low = Avx512Vbmi.PermuteVar64x8x2(t0, x, t1);
        var high = Avx512Vbmi.PermuteVar64x8x2(t2, x, t3);
        return Vector512.ConditionalSelect(Vector512.LessThan(x.AsSByte(), Vector512<sbyte>.Zero).AsByte(), high, low);
    }

    private static byte[] Build()
    {
        var table = GC.AllocateArray<byte>(5 * 256, pinned: true);
        for (int k = 0; k < 5; k++)
        {
            for (int b = 0; b < 256; b++)
            {
                int v = b;
                for (int i = 0; i < k; i++)
                {
                    v /= 3;
                }

                table[(k * 256) + b] = unchecked((byte)(sbyte)((v % 3) - 1));
            }
        }

        return table;
    }
}
