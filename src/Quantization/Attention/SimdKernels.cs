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
}
