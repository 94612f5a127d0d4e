using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// The float32 vector primitives of the fused CPU attention, one implementation per <see cref="FusedKernelPath"/>.
/// Buffers handed to the <c>Padded</c> kernels hold a multiple of <see cref="Lanes"/> floats; the others take any length.
/// </summary>
internal static unsafe class SimdKernels
{
    /// <summary>Every padded buffer length is a multiple of this (one 512-bit vector).</summary>
    public const int Lanes = 16;

    /// <summary>Rounds up to a multiple of <see cref="Lanes"/>.</summary>
    public static int Pad(int n) => (n + Lanes - 1) / Lanes * Lanes;

    /// <summary>Whether this processor runs <paramref name="path"/>.</summary>
    public static bool IsSupported(FusedKernelPath path) => path switch
    {
        FusedKernelPath.Auto or FusedKernelPath.Portable => true,
        FusedKernelPath.Avx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported,
        FusedKernelPath.Avx2 => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported,
        _ => false,
    };

    /// <summary>The concrete path <paramref name="path"/> stands for on this processor.</summary>
    /// <exception cref="NotSupportedException">The processor does not accelerate the path asked for.</exception>
    public static FusedKernelPath Resolve(FusedKernelPath path)
    {
        if (path == FusedKernelPath.Auto)
        {
            return IsSupported(FusedKernelPath.Avx512) ? FusedKernelPath.Avx512
                : IsSupported(FusedKernelPath.Avx2) ? FusedKernelPath.Avx2 : FusedKernelPath.Portable;
        }

        if (!Enum.IsDefined(path))
        {
            throw new ArgumentOutOfRangeException(nameof(path), path, $"Allowed: {string.Join(", ", Enum.GetValues<FusedKernelPath>())}.");
        }

        return IsSupported(path) ? path : throw new NotSupportedException($"Kernel path {path} is not accelerated on this processor; use Auto or one of: {string.Join(", ", Enum.GetValues<FusedKernelPath>().Where(p => p <= FusedKernelPath.Portable && IsSupported(p)))}.");
    }

    /// <summary>Σ a_i b_i over a padded length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DotPadded(float* a, float* b, int len, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512)
        {
            var acc = Vector512<float>.Zero;
            for (int i = 0; i < len; i += 16)
            {
                acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc);
            }

            return Vector512.Sum(acc);
        }

        if (path == FusedKernelPath.Avx2)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (int i = 0; i < len; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }

            return Vector256.Sum(acc0 + acc1);
        }

        float s = 0;
        for (int i = 0; i < len; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }

    /// <summary>
    /// Scores of a run of unpacked key rows against query rows: <c>scores[r·scoreStride + t] = Σ_i keys[t·rowStride + i]·q[r·qStride + i] + add[r]</c>
    /// for t &lt; <paramref name="tokens"/>, r &lt; <paramref name="rows"/>, over a padded length <paramref name="len"/>.
    /// </summary>
    /// <remarks>The vector paths take four tokens per pass over a query row (one query load feeds four FMAs) and
    /// reduce the four sums together.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scores(float* keys, int rowStride, int tokens, float* q, int qStride, int rows, int len, float* add, float* scores, int scoreStride, FusedKernelPath path)
    {
        int t = 0;
        if (path == FusedKernelPath.Avx512)
        {
            // Two query rows by four tokens per pass: eight independent FMA chains, six loads per eight FMAs.
            for (; t + 4 <= tokens; t += 4)
            {
                float* k0 = keys + (t * rowStride), k1 = k0 + rowStride, k2 = k1 + rowStride, k3 = k2 + rowStride;
                int r = 0;
                for (; r + 2 <= rows; r += 2)
                {
                    float* qa = q + (r * qStride), qb = qa + qStride;
                    Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                    for (int i = 0; i < len; i += 16)
                    {
                        var x0 = Vector512.Load(k0 + i);
                        var x1 = Vector512.Load(k1 + i);
                        var x2 = Vector512.Load(k2 + i);
                        var x3 = Vector512.Load(k3 + i);
                        var qv = Vector512.Load(qa + i);
                        a0 = Vector512.FusedMultiplyAdd(x0, qv, a0);
                        a1 = Vector512.FusedMultiplyAdd(x1, qv, a1);
                        a2 = Vector512.FusedMultiplyAdd(x2, qv, a2);
                        a3 = Vector512.FusedMultiplyAdd(x3, qv, a3);
                        qv = Vector512.Load(qb + i);
                        b0 = Vector512.FusedMultiplyAdd(x0, qv, b0);
                        b1 = Vector512.FusedMultiplyAdd(x1, qv, b1);
                        b2 = Vector512.FusedMultiplyAdd(x2, qv, b2);
                        b3 = Vector512.FusedMultiplyAdd(x3, qv, b3);
                    }

                    (Sum4(a0, a1, a2, a3) + Vector128.Create(add[r])).Store(scores + (r * scoreStride) + t);
                    (Sum4(b0, b1, b2, b3) + Vector128.Create(add[r + 1])).Store(scores + ((r + 1) * scoreStride) + t);
                }

                for (; r < rows; r++)
                {
                    float* qr = q + (r * qStride);
                    Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                    for (int i = 0; i < len; i += 16)
                    {
                        var qv = Vector512.Load(qr + i);
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Load(k0 + i), qv, a0);
                        a1 = Vector512.FusedMultiplyAdd(Vector512.Load(k1 + i), qv, a1);
                        a2 = Vector512.FusedMultiplyAdd(Vector512.Load(k2 + i), qv, a2);
                        a3 = Vector512.FusedMultiplyAdd(Vector512.Load(k3 + i), qv, a3);
                    }

                    (Sum4(a0, a1, a2, a3) + Vector128.Create(add[r])).Store(scores + (r * scoreStride) + t);
                }
            }
        }
        else if (path == FusedKernelPath.Avx2)
        {
            for (; t + 4 <= tokens; t += 4)
            {
                float* k0 = keys + (t * rowStride), k1 = k0 + rowStride, k2 = k1 + rowStride, k3 = k2 + rowStride;
                for (int r = 0; r < rows; r++)
                {
                    float* qr = q + (r * qStride);
                    Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                    for (int i = 0; i < len; i += 8)
                    {
                        var qv = Vector256.Load(qr + i);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Load(k0 + i), qv, a0);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.Load(k1 + i), qv, a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.Load(k2 + i), qv, a2);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.Load(k3 + i), qv, a3);
                    }

                    (Sum4(a0, a1, a2, a3) + Vector128.Create(add[r])).Store(scores + (r * scoreStride) + t);
                }
            }
        }

        for (; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                scores[(r * scoreStride) + t] = DotPadded(keys + (t * rowStride), q + (r * qStride), len, path) + add[r];
            }
        }
    }

    /// <summary>
    /// Weighted sums of a run of unpacked value rows: <c>acc[r·accStride + c] += Σ_t p[r·pStride + t]·v[t·vStride + c]</c>
    /// for r &lt; <paramref name="rows"/>, t &lt; <paramref name="tokens"/>, over a padded length <paramref name="len"/>.
    /// </summary>
    /// <remarks>
    /// The vector paths keep a tile of 4 query rows × 64 (AVX-512) or 16 (AVX2) channels in registers across the
    /// tokens, so each value vector is loaded once per 4 rows. A last tile with fewer rows reads its missing rows' weights
    /// from <paramref name="zeros"/> (<paramref name="tokens"/> zeros) and writes them to <paramref name="sink"/>
    /// (<paramref name="len"/> floats of scratch).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AccumulateRows(float* acc, int accStride, float* p, int pStride, int rows, float* v, int vStride, int tokens, int len, float* zeros, float* sink, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Portable)
        {
            for (int r = 0; r < rows; r++)
            {
                for (int t = 0; t < tokens; t++)
                {
                    AxpyPadded(acc + (r * accStride), p[(r * pStride) + t], v + (t * vStride), len, path);
                }
            }

            return;
        }

        if (path == FusedKernelPath.Avx512 && rows == 7)
        {
            AccumulateRows7(acc, accStride, p, pStride, new FloatRows(v, vStride), len / 16, tokens);
            return;
        }

        for (int r0 = 0; r0 < rows; r0 += 4)
        {
            float* p0 = p + (r0 * pStride), o0 = acc + (r0 * accStride);
            float* p1 = r0 + 1 < rows ? p0 + pStride : zeros, o1 = r0 + 1 < rows ? o0 + accStride : sink;
            float* p2 = r0 + 2 < rows ? p1 + pStride : zeros, o2 = r0 + 2 < rows ? o1 + accStride : sink;
            float* p3 = r0 + 3 < rows ? p2 + pStride : zeros, o3 = r0 + 3 < rows ? o2 + accStride : sink;
            if (path == FusedKernelPath.Avx512)
            {
                AccumulateTile512(o0, o1, o2, o3, p0, p1, p2, p3, v, vStride, tokens, len);
            }
            else
            {
                AccumulateTile256(o0, o1, o2, o3, p0, p1, p2, p3, v, vStride, tokens, len);
            }
        }
    }

    /// <summary>
    /// <c>acc[r·accStride + 16v + i] += Σ_t p[r·pStride + t]·level(t, v, i)</c> for seven rows, where vector v of token t's
    /// digit-major trit levels is read from the digit planes (<see cref="TritPlanes.Decode"/>) and converted in registers:
    /// digit k = v / (S/16), bytes 16·(v mod (S/16)) + i of row t, S = <see cref="TritPlanes.DigitSlots"/>.
    /// </summary>
    public static void AccumulatePlanes7(float* acc, int accStride, float* p, int pStride, sbyte* planes, int planeStride, int rowBytes, int tokens)
        => AccumulateRows7(acc, accStride, p, pStride, new PlaneRows(planes, planeStride, rowBytes), 5 * TritPlanes.DigitSlots(rowBytes) / 16, tokens);

    /// <summary>
    /// <see cref="AccumulateRows"/> for exactly seven rows (the query heads of one KV head in LLaVA-OneVision and Qwen2.5-VL
    /// at decode), over <paramref name="vectors"/> 16-lane vectors of value rows that <paramref name="rows"/> reads: tiles of
    /// 7 rows × 48 channels (21 accumulators), each value vector read once for all seven rows and no padding row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateRows7<TRows>(float* acc, int accStride, float* p, int pStride, TRows rows, int vectors, int tokens)
        where TRows : struct, IValueRows
    {
        float* p0 = p, p1 = p0 + pStride, p2 = p1 + pStride, p3 = p2 + pStride, p4 = p3 + pStride, p5 = p4 + pStride, p6 = p5 + pStride;
        float* o0 = acc, o1 = o0 + accStride, o2 = o1 + accStride, o3 = o2 + accStride, o4 = o3 + accStride, o5 = o4 + accStride, o6 = o5 + accStride;
        int vi = 0;
        for (; vi + 3 <= vectors; vi += 3)
        {
            int c = 16 * vi;
            byte* s0 = rows.Column(vi), s1 = rows.Column(vi + 1), s2 = rows.Column(vi + 2);
            Vector512<float> a00 = Vector512.Load(o0 + c), a01 = Vector512.Load(o0 + c + 16), a02 = Vector512.Load(o0 + c + 32);
            Vector512<float> a10 = Vector512.Load(o1 + c), a11 = Vector512.Load(o1 + c + 16), a12 = Vector512.Load(o1 + c + 32);
            Vector512<float> a20 = Vector512.Load(o2 + c), a21 = Vector512.Load(o2 + c + 16), a22 = Vector512.Load(o2 + c + 32);
            Vector512<float> a30 = Vector512.Load(o3 + c), a31 = Vector512.Load(o3 + c + 16), a32 = Vector512.Load(o3 + c + 32);
            Vector512<float> a40 = Vector512.Load(o4 + c), a41 = Vector512.Load(o4 + c + 16), a42 = Vector512.Load(o4 + c + 32);
            Vector512<float> a50 = Vector512.Load(o5 + c), a51 = Vector512.Load(o5 + c + 16), a52 = Vector512.Load(o5 + c + 32);
            Vector512<float> a60 = Vector512.Load(o6 + c), a61 = Vector512.Load(o6 + c + 16), a62 = Vector512.Load(o6 + c + 32);
            for (int t = 0; t < tokens; t++)
            {
                var v0 = rows.Load(s0, t);
                var v1 = rows.Load(s1, t);
                var v2 = rows.Load(s2, t);
                var b0 = Vector512.Create(p0[t]);
                a00 = Vector512.FusedMultiplyAdd(v0, b0, a00);
                a01 = Vector512.FusedMultiplyAdd(v1, b0, a01);
                a02 = Vector512.FusedMultiplyAdd(v2, b0, a02);
                var b1 = Vector512.Create(p1[t]);
                a10 = Vector512.FusedMultiplyAdd(v0, b1, a10);
                a11 = Vector512.FusedMultiplyAdd(v1, b1, a11);
                a12 = Vector512.FusedMultiplyAdd(v2, b1, a12);
                var b2 = Vector512.Create(p2[t]);
                a20 = Vector512.FusedMultiplyAdd(v0, b2, a20);
                a21 = Vector512.FusedMultiplyAdd(v1, b2, a21);
                a22 = Vector512.FusedMultiplyAdd(v2, b2, a22);
                var b3 = Vector512.Create(p3[t]);
                a30 = Vector512.FusedMultiplyAdd(v0, b3, a30);
                a31 = Vector512.FusedMultiplyAdd(v1, b3, a31);
                a32 = Vector512.FusedMultiplyAdd(v2, b3, a32);
                var b4 = Vector512.Create(p4[t]);
                a40 = Vector512.FusedMultiplyAdd(v0, b4, a40);
                a41 = Vector512.FusedMultiplyAdd(v1, b4, a41);
                a42 = Vector512.FusedMultiplyAdd(v2, b4, a42);
                var b5 = Vector512.Create(p5[t]);
                a50 = Vector512.FusedMultiplyAdd(v0, b5, a50);
                a51 = Vector512.FusedMultiplyAdd(v1, b5, a51);
                a52 = Vector512.FusedMultiplyAdd(v2, b5, a52);
                var b6 = Vector512.Create(p6[t]);
                a60 = Vector512.FusedMultiplyAdd(v0, b6, a60);
                a61 = Vector512.FusedMultiplyAdd(v1, b6, a61);
                a62 = Vector512.FusedMultiplyAdd(v2, b6, a62);
            }

            a00.Store(o0 + c);
            a01.Store(o0 + c + 16);
            a02.Store(o0 + c + 32);
            a10.Store(o1 + c);
            a11.Store(o1 + c + 16);
            a12.Store(o1 + c + 32);
            a20.Store(o2 + c);
            a21.Store(o2 + c + 16);
            a22.Store(o2 + c + 32);
            a30.Store(o3 + c);
            a31.Store(o3 + c + 16);
            a32.Store(o3 + c + 32);
            a40.Store(o4 + c);
            a41.Store(o4 + c + 16);
            a42.Store(o4 + c + 32);
            a50.Store(o5 + c);
            a51.Store(o5 + c + 16);
            a52.Store(o5 + c + 32);
            a60.Store(o6 + c);
            a61.Store(o6 + c + 16);
            a62.Store(o6 + c + 32);
        }

        for (; vi < vectors; vi++)
        {
            int c = 16 * vi;
            byte* s0 = rows.Column(vi);
            Vector512<float> a0 = Vector512.Load(o0 + c), a1 = Vector512.Load(o1 + c), a2 = Vector512.Load(o2 + c), a3 = Vector512.Load(o3 + c), a4 = Vector512.Load(o4 + c), a5 = Vector512.Load(o5 + c), a6 = Vector512.Load(o6 + c);
            for (int t = 0; t < tokens; t++)
            {
                var x = rows.Load(s0, t);
                a0 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p0[t]), a0);
                a1 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p1[t]), a1);
                a2 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p2[t]), a2);
                a3 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p3[t]), a3);
                a4 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p4[t]), a4);
                a5 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p5[t]), a5);
                a6 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p6[t]), a6);
            }

            a0.Store(o0 + c);
            a1.Store(o1 + c);
            a2.Store(o2 + c);
            a3.Store(o3 + c);
            a4.Store(o4 + c);
            a5.Store(o5 + c);
            a6.Store(o6 + c);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateTile512(float* o0, float* o1, float* o2, float* o3, float* p0, float* p1, float* p2, float* p3, float* v, int vStride, int tokens, int len)
    {
        int c = 0;
        for (; c + 64 <= len; c += 64)
        {
            Vector512<float> a00 = Vector512.Load(o0 + c), a01 = Vector512.Load(o0 + c + 16), a02 = Vector512.Load(o0 + c + 32), a03 = Vector512.Load(o0 + c + 48);
            Vector512<float> a10 = Vector512.Load(o1 + c), a11 = Vector512.Load(o1 + c + 16), a12 = Vector512.Load(o1 + c + 32), a13 = Vector512.Load(o1 + c + 48);
            Vector512<float> a20 = Vector512.Load(o2 + c), a21 = Vector512.Load(o2 + c + 16), a22 = Vector512.Load(o2 + c + 32), a23 = Vector512.Load(o2 + c + 48);
            Vector512<float> a30 = Vector512.Load(o3 + c), a31 = Vector512.Load(o3 + c + 16), a32 = Vector512.Load(o3 + c + 32), a33 = Vector512.Load(o3 + c + 48);
            float* vt = v + c;
            for (int t = 0; t < tokens; t++, vt += vStride)
            {
                var v0 = Vector512.Load(vt);
                var v1 = Vector512.Load(vt + 16);
                var v2 = Vector512.Load(vt + 32);
                var v3 = Vector512.Load(vt + 48);
                var b = Vector512.Create(p0[t]);
                a00 = Vector512.FusedMultiplyAdd(v0, b, a00);
                a01 = Vector512.FusedMultiplyAdd(v1, b, a01);
                a02 = Vector512.FusedMultiplyAdd(v2, b, a02);
                a03 = Vector512.FusedMultiplyAdd(v3, b, a03);
                b = Vector512.Create(p1[t]);
                a10 = Vector512.FusedMultiplyAdd(v0, b, a10);
                a11 = Vector512.FusedMultiplyAdd(v1, b, a11);
                a12 = Vector512.FusedMultiplyAdd(v2, b, a12);
                a13 = Vector512.FusedMultiplyAdd(v3, b, a13);
                b = Vector512.Create(p2[t]);
                a20 = Vector512.FusedMultiplyAdd(v0, b, a20);
                a21 = Vector512.FusedMultiplyAdd(v1, b, a21);
                a22 = Vector512.FusedMultiplyAdd(v2, b, a22);
                a23 = Vector512.FusedMultiplyAdd(v3, b, a23);
                b = Vector512.Create(p3[t]);
                a30 = Vector512.FusedMultiplyAdd(v0, b, a30);
                a31 = Vector512.FusedMultiplyAdd(v1, b, a31);
                a32 = Vector512.FusedMultiplyAdd(v2, b, a32);
                a33 = Vector512.FusedMultiplyAdd(v3, b, a33);
            }

            a00.Store(o0 + c);
            a01.Store(o0 + c + 16);
            a02.Store(o0 + c + 32);
            a03.Store(o0 + c + 48);
            a10.Store(o1 + c);
            a11.Store(o1 + c + 16);
            a12.Store(o1 + c + 32);
            a13.Store(o1 + c + 48);
            a20.Store(o2 + c);
            a21.Store(o2 + c + 16);
            a22.Store(o2 + c + 32);
            a23.Store(o2 + c + 48);
            a30.Store(o3 + c);
            a31.Store(o3 + c + 16);
            a32.Store(o3 + c + 32);
            a33.Store(o3 + c + 48);
        }

        for (; c < len; c += 16)
        {
            Vector512<float> a0 = Vector512.Load(o0 + c), a1 = Vector512.Load(o1 + c), a2 = Vector512.Load(o2 + c), a3 = Vector512.Load(o3 + c);
            float* vt = v + c;
            for (int t = 0; t < tokens; t++, vt += vStride)
            {
                var x = Vector512.Load(vt);
                a0 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p0[t]), a0);
                a1 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p1[t]), a1);
                a2 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p2[t]), a2);
                a3 = Vector512.FusedMultiplyAdd(x, Vector512.Create(p3[t]), a3);
            }

            a0.Store(o0 + c);
            a1.Store(o1 + c);
            a2.Store(o2 + c);
            a3.Store(o3 + c);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateTile256(float* o0, float* o1, float* o2, float* o3, float* p0, float* p1, float* p2, float* p3, float* v, int vStride, int tokens, int len)
    {
        // Padded lengths are multiples of 16: two 256-bit vectors per tile row (8 accumulators, within AVX2's 16 registers).
        for (int c = 0; c < len; c += 16)
        {
            Vector256<float> a00 = Vector256.Load(o0 + c), a01 = Vector256.Load(o0 + c + 8);
            Vector256<float> a10 = Vector256.Load(o1 + c), a11 = Vector256.Load(o1 + c + 8);
            Vector256<float> a20 = Vector256.Load(o2 + c), a21 = Vector256.Load(o2 + c + 8);
            Vector256<float> a30 = Vector256.Load(o3 + c), a31 = Vector256.Load(o3 + c + 8);
            float* vt = v + c;
            for (int t = 0; t < tokens; t++, vt += vStride)
            {
                var v0 = Vector256.Load(vt);
                var v1 = Vector256.Load(vt + 8);
                var b = Vector256.Create(p0[t]);
                a00 = Vector256.FusedMultiplyAdd(v0, b, a00);
                a01 = Vector256.FusedMultiplyAdd(v1, b, a01);
                b = Vector256.Create(p1[t]);
                a10 = Vector256.FusedMultiplyAdd(v0, b, a10);
                a11 = Vector256.FusedMultiplyAdd(v1, b, a11);
                b = Vector256.Create(p2[t]);
                a20 = Vector256.FusedMultiplyAdd(v0, b, a20);
                a21 = Vector256.FusedMultiplyAdd(v1, b, a21);
                b = Vector256.Create(p3[t]);
                a30 = Vector256.FusedMultiplyAdd(v0, b, a30);
                a31 = Vector256.FusedMultiplyAdd(v1, b, a31);
            }

            a00.Store(o0 + c);
            a01.Store(o0 + c + 8);
            a10.Store(o1 + c);
            a11.Store(o1 + c + 8);
            a20.Store(o2 + c);
            a21.Store(o2 + c + 8);
            a30.Store(o3 + c);
            a31.Store(o3 + c + 8);
        }
    }

    /// <summary>
    /// Scores of seven query rows against one group of 32 tokens straight from their packed key codes, for up to two
    /// sources of 1- or 2-bit codes in rows of 4, 8 or 16 bytes (the outlier channels and the 1-bit components): each
    /// 32-bit word position of the 32 rows is brought together (dword permutes), and then, code by code, one 16-entry
    /// permute (of a table periodic in the code's bits) and one shift give a channel's levels for 16 tokens, which 7 × 2 FMAs weight by that channel of
    /// the scaled query rows (<paramref name="qs"/>, source s's channels at <c>offset_s</c>). No row is unpacked and no
    /// horizontal sum is taken. <c>scores[r·scoreStride + t] = Σ_c qs[r, c]·level[t, c] + add[r]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoresFromCodes7(
        byte* codesA, int bytesA, int countA, int bitsA, float* levelsA, int offsetA,
        byte* codesB, int bytesB, int countB, int bitsB, float* levelsB, int offsetB,
        float* qs, int qStride, float* add, float* scores, int scoreStride)
    {
        Vector512<float> a00 = Vector512<float>.Zero, a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00;
        for (int source = 0; source < 2; source++)
        {
            byte* codes = source == 0 ? codesA : codesB;
            if (codes == null)
            {
                continue;
            }

            int rowBytes = source == 0 ? bytesA : bytesB, count = source == 0 ? countA : countB, bits = source == 0 ? bitsA : bitsB;
            // The levels table is periodic in the code's bits (CodeTables.GetLevels16): a lane's low four bits index it, so
            // each code needs one shift of the words and one permute, no mask.
            var table = Vector512.Load(source == 0 ? levelsA : levelsB);
            var step = Vector512.Create((uint)bits);
            int perWord = 32 / bits;
            float* q = qs + (source == 0 ? offsetA : offsetB);
            for (int word = 0; word * perWord < count; word++)
            {
                var w0 = Words(codes, rowBytes, word);
                var w1 = Words(codes + (16 * rowBytes), rowBytes, word);
                int end = Math.Min(perWord, count - (word * perWord));
                for (int j = 0; j < end; j++, q++)
                {
                    var x0 = Avx512F.PermuteVar16x32(table, w0.AsInt32());
                    var x1 = Avx512F.PermuteVar16x32(table, w1.AsInt32());
                    w0 = Avx512F.ShiftRightLogicalVariable(w0, step);
                    w1 = Avx512F.ShiftRightLogicalVariable(w1, step);
                    var b0 = Vector512.Create(q[0 * qStride]);
                    a00 = Vector512.FusedMultiplyAdd(x0, b0, a00);
                    a01 = Vector512.FusedMultiplyAdd(x1, b0, a01);
                    var b1 = Vector512.Create(q[1 * qStride]);
                    a10 = Vector512.FusedMultiplyAdd(x0, b1, a10);
                    a11 = Vector512.FusedMultiplyAdd(x1, b1, a11);
                    var b2 = Vector512.Create(q[2 * qStride]);
                    a20 = Vector512.FusedMultiplyAdd(x0, b2, a20);
                    a21 = Vector512.FusedMultiplyAdd(x1, b2, a21);
                    var b3 = Vector512.Create(q[3 * qStride]);
                    a30 = Vector512.FusedMultiplyAdd(x0, b3, a30);
                    a31 = Vector512.FusedMultiplyAdd(x1, b3, a31);
                    var b4 = Vector512.Create(q[4 * qStride]);
                    a40 = Vector512.FusedMultiplyAdd(x0, b4, a40);
                    a41 = Vector512.FusedMultiplyAdd(x1, b4, a41);
                    var b5 = Vector512.Create(q[5 * qStride]);
                    a50 = Vector512.FusedMultiplyAdd(x0, b5, a50);
                    a51 = Vector512.FusedMultiplyAdd(x1, b5, a51);
                    var b6 = Vector512.Create(q[6 * qStride]);
                    a60 = Vector512.FusedMultiplyAdd(x0, b6, a60);
                    a61 = Vector512.FusedMultiplyAdd(x1, b6, a61);
                }
            }
        }

        var c0 = Vector512.Create(add[0]);
        (a00 + c0).Store(scores + (0 * scoreStride));
        (a01 + c0).Store(scores + (0 * scoreStride) + 16);
        var c1 = Vector512.Create(add[1]);
        (a10 + c1).Store(scores + (1 * scoreStride));
        (a11 + c1).Store(scores + (1 * scoreStride) + 16);
        var c2 = Vector512.Create(add[2]);
        (a20 + c2).Store(scores + (2 * scoreStride));
        (a21 + c2).Store(scores + (2 * scoreStride) + 16);
        var c3 = Vector512.Create(add[3]);
        (a30 + c3).Store(scores + (3 * scoreStride));
        (a31 + c3).Store(scores + (3 * scoreStride) + 16);
        var c4 = Vector512.Create(add[4]);
        (a40 + c4).Store(scores + (4 * scoreStride));
        (a41 + c4).Store(scores + (4 * scoreStride) + 16);
        var c5 = Vector512.Create(add[5]);
        (a50 + c5).Store(scores + (5 * scoreStride));
        (a51 + c5).Store(scores + (5 * scoreStride) + 16);
        var c6 = Vector512.Create(add[6]);
        (a60 + c6).Store(scores + (6 * scoreStride));
        (a61 + c6).Store(scores + (6 * scoreStride) + 16);
    }

    /// <summary>Whether <see cref="ScoresFromCodes7"/> reads a source of <paramref name="bits"/>-bit codes in rows of <paramref name="rowBytes"/> bytes.</summary>
    public static bool ScoresFromCodesFit(int bits, int rowBytes) => bits is 1 or 2 && rowBytes is 4 or 8 or 16;

    /// <summary>32-bit word <paramref name="word"/> of 16 consecutive packed rows of 4, 8 or 16 bytes, one row per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> Words(byte* rows, int rowBytes, int word)
    {
        if (rowBytes == 4)
        {
            // One word a row (head dim 64: 32 one-bit components, or 16 two-bit channels): the rows are the lanes.
            return Vector512.Load((uint*)rows);
        }

        var lane = Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        if (rowBytes == 8)
        {
            // Two words a row: lane l takes word 2l + word of the 32 words in two vectors.
            return Avx512F.PermuteVar16x32x2(Vector512.Load((uint*)rows), (lane * 2u) + Vector512.Create((uint)word), Vector512.Load((uint*)(rows + 64)));
        }

        // Four words a row: rows 0-7 and 8-15 in two steps, then the halves joined.
        var index = (lane * 4u) + Vector512.Create((uint)word);
        var low = Avx512F.PermuteVar16x32x2(Vector512.Load((uint*)rows), index, Vector512.Load((uint*)(rows + 64)));
        var high = Avx512F.PermuteVar16x32x2(Vector512.Load((uint*)(rows + 128)), index, Vector512.Load((uint*)(rows + 192)));
        return Avx512F.InsertVector256(low, high.GetLower(), 1);
    }

    /// <summary>
    /// For each of <paramref name="rows"/> rows (<paramref name="stride"/> floats apart): <c>qs = qb ⊙ s</c> over a padded
    /// length, and <c>consts[r] = qb · z</c> (0 when <paramref name="z"/> is null). The AVX-512 path keeps four rows'
    /// dot products in flight at once, where one row at a time waits on one FMA chain.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaleRows(float* qs, float* qb, int stride, int rows, float* s, float* z, float* consts, int len, FusedKernelPath path)
    {
        int r = 0;
        if (path == FusedKernelPath.Avx512)
        {
            for (; r + 4 <= rows; r += 4)
            {
                float* a = qb + (r * stride), b = a + stride, c = b + stride, d = c + stride;
                float* oa = qs + (r * stride), ob = oa + stride, oc = ob + stride, od = oc + stride;
                Vector512<float> ca = Vector512<float>.Zero, cb = ca, cc = ca, cd = ca;
                for (int i = 0; i < len; i += 16)
                {
                    var sv = Vector512.Load(s + i);
                    Vector512<float> va = Vector512.Load(a + i), vb = Vector512.Load(b + i), vc = Vector512.Load(c + i), vd = Vector512.Load(d + i);
                    (va * sv).Store(oa + i);
                    (vb * sv).Store(ob + i);
                    (vc * sv).Store(oc + i);
                    (vd * sv).Store(od + i);
                    if (z != null)
                    {
                        var zv = Vector512.Load(z + i);
                        ca = Vector512.FusedMultiplyAdd(va, zv, ca);
                        cb = Vector512.FusedMultiplyAdd(vb, zv, cb);
                        cc = Vector512.FusedMultiplyAdd(vc, zv, cc);
                        cd = Vector512.FusedMultiplyAdd(vd, zv, cd);
                    }
                }

                var sums = Sum4(ca, cb, cc, cd);
                consts[r] = sums.GetElement(0);
                consts[r + 1] = sums.GetElement(1);
                consts[r + 2] = sums.GetElement(2);
                consts[r + 3] = sums.GetElement(3);
            }
        }

        for (; r < rows; r++)
        {
            MulPadded(qs + (r * stride), qb + (r * stride), s, len, path);
            consts[r] = z != null ? DotPadded(qb + (r * stride), z, len, path) : 0f;
        }
    }

    /// <summary>The four horizontal sums of four 512-bit vectors, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
        => Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());

    /// <summary>The four horizontal sums of four 256-bit vectors, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return h.GetLower() + h.GetUpper();
    }

    /// <summary>y += a·x over a padded length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AxpyPadded(float* y, float a, float* x, int len, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512)
        {
            var va = Vector512.Create(a);
            for (int i = 0; i < len; i += 16)
            {
                Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
            }

            return;
        }

        if (path == FusedKernelPath.Avx2)
        {
            var va = Vector256.Create(a);
            for (int i = 0; i < len; i += 8)
            {
                Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
            }

            return;
        }

        for (int i = 0; i < len; i++)
        {
            y[i] += a * x[i];
        }
    }

    /// <summary>dst = a ⊙ b over a padded length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MulPadded(float* dst, float* a, float* b, int len, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512)
        {
            for (int i = 0; i < len; i += 16)
            {
                (Vector512.Load(a + i) * Vector512.Load(b + i)).Store(dst + i);
            }

            return;
        }

        if (path == FusedKernelPath.Avx2)
        {
            for (int i = 0; i < len; i += 8)
            {
                (Vector256.Load(a + i) * Vector256.Load(b + i)).Store(dst + i);
            }

            return;
        }

        for (int i = 0; i < len; i++)
        {
            dst[i] = a[i] * b[i];
        }
    }

    /// <summary>y += s ⊙ x over a padded length (folds one group's code sums into the output).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FmaPadded(float* y, float* s, float* x, int len, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512)
        {
            for (int i = 0; i < len; i += 16)
            {
                Vector512.FusedMultiplyAdd(Vector512.Load(s + i), Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
            }

            return;
        }

        if (path == FusedKernelPath.Avx2)
        {
            for (int i = 0; i < len; i += 8)
            {
                Vector256.FusedMultiplyAdd(Vector256.Load(s + i), Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
            }

            return;
        }

        for (int i = 0; i < len; i++)
        {
            y[i] += s[i] * x[i];
        }
    }

    /// <summary>y *= a over a padded length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScalePadded(float* y, float a, int len, FusedKernelPath path)
    {
        if (path == FusedKernelPath.Avx512)
        {
            var va = Vector512.Create(a);
            for (int i = 0; i < len; i += 16)
            {
                (Vector512.Load(y + i) * va).Store(y + i);
            }

            return;
        }

        if (path == FusedKernelPath.Avx2)
        {
            var va = Vector256.Create(a);
            for (int i = 0; i < len; i += 8)
            {
                (Vector256.Load(y + i) * va).Store(y + i);
            }

            return;
        }

        for (int i = 0; i < len; i++)
        {
            y[i] *= a;
        }
    }

    /// <summary>The largest of <paramref name="len"/> floats (any length ≥ 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Max(float* x, int len, FusedKernelPath path)
    {
        int i = 0;
        float m = float.NegativeInfinity;
        if (path == FusedKernelPath.Avx512 && len >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= len; i += 16)
            {
                acc = Vector512.Max(acc, Vector512.Load(x + i));
            }

            for (int j = 0; j < 16; j++)
            {
                m = MathF.Max(m, acc.GetElement(j));
            }
        }
        else if (path == FusedKernelPath.Avx2 && len >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i + 8 <= len; i += 8)
            {
                acc = Vector256.Max(acc, Vector256.Load(x + i));
            }

            for (int j = 0; j < 8; j++)
            {
                m = MathF.Max(m, acc.GetElement(j));
            }
        }

        for (; i < len; i++)
        {
            m = MathF.Max(m, x[i]);
        }

        return m;
    }

    /// <summary>x_i = exp(x_i - m) in place (any length); returns Σ x_i. -∞ entries become 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float ExpSum(float* x, int len, float m, FusedKernelPath path)
    {
        int i = 0;
        float sum = 0;
        if (path == FusedKernelPath.Avx512)
        {
            var vm = Vector512.Create(m);
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= len; i += 16)
            {
                var e = Exp(Vector512.Load(x + i) - vm);
                e.Store(x + i);
                acc += e;
            }

            sum = Vector512.Sum(acc);
        }
        else if (path == FusedKernelPath.Avx2)
        {
            var vm = Vector256.Create(m);
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= len; i += 8)
            {
                var e = Exp(Vector256.Load(x + i) - vm);
                e.Store(x + i);
                acc += e;
            }

            sum = Vector256.Sum(acc);
        }

        for (; i < len; i++)
        {
            float e = MathF.Exp(x[i] - m);
            x[i] = e;
            sum += e;
        }

        return sum;
    }

    // exp(x) for x ≤ 0 (scores minus their running maximum): x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6
    // polynomial (relative error about 2e-7, as MathF.Exp's float result), 2^n put into the exponent bits; below
    // -87.3 (where float32 underflows) the result is 0, so -∞ and float.MinValue give 0.
    private const float Log2E = 1.44269504089f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f, ExpFloor = -87.33654f;
    private const float C2 = 0.5f, C3 = 1.6666666e-1f, C4 = 4.1666548e-2f, C5 = 8.3333090e-3f, C6 = 1.3888889e-3f;

    /// <summary>e^x lane by lane for x ≤ 0 (0 below float32's underflow, so for -∞ too).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var keep = Vector512.GreaterThanOrEqual(x, Vector512.Create(ExpFloor));
        x = Vector512.Max(x, Vector512.Create(ExpFloor));
        var n = Vector512.Round(x * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(C6), r, Vector512.Create(C5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C2));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var scaled = (p.AsInt32() + (Vector512.ConvertToInt32(n) << 23)).AsSingle();
        return scaled & keep;
    }

    /// <summary>e^x lane by lane for x ≤ 0 (0 below float32's underflow, so for -∞ too).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var keep = Vector256.GreaterThanOrEqual(x, Vector256.Create(ExpFloor));
        x = Vector256.Max(x, Vector256.Create(ExpFloor));
        var n = Vector256.Round(x * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(C6), r, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        var scaled = (p.AsInt32() + (Vector256.ConvertToInt32(n) << 23)).AsSingle();
        return scaled & keep;
    }

    /// <summary>Value rows as <see cref="AccumulateRows7"/> reads them: a column of 16 lanes, then token t's vector in it.</summary>
    private interface IValueRows
    {
        byte* Column(int vector);

        Vector512<float> Load(byte* column, int t);
    }

    /// <summary>Unpacked float32 rows, <c>stride</c> floats apart.</summary>
    private readonly struct FloatRows(float* rows, int stride) : IValueRows
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte* Column(int vector) => (byte*)(rows + (16 * vector));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Load(byte* column, int t) => Vector512.Load((float*)column + (t * stride));
    }

    /// <summary>Digit planes of packed trit rows (<see cref="TritPlanes"/>): signed levels converted in registers.</summary>
    private readonly struct PlaneRows(sbyte* planes, int planeStride, int rowBytes) : IValueRows
    {
        private readonly int _perDigit = TritPlanes.DigitSlots(rowBytes) / 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte* Column(int vector) => (byte*)(planes + ((vector / _perDigit) * planeStride) + (16 * (vector % _perDigit)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Load(byte* column, int t)
            => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)column + (t * rowBytes))));
    }
}
