using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests;

internal static class TensorAssert
{
    public static float[] Floats(Tensor t) => t.to(ScalarType.Float32).contiguous().data<float>().ToArray();

    public static long[] Longs(Tensor t) => t.to(ScalarType.Int64).contiguous().data<long>().ToArray();

    public static void Close(IReadOnlyList<double> expected, Tensor actual, double tolerance)
    {
        var a = Floats(actual);
        Assert.Equal(expected.Count, a.Length);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - a[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {a[i]} (tolerance {tolerance})");
        }
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
        => (a.to(ScalarType.Float32) - b.to(ScalarType.Float32)).abs().max().item<float>();

    public static double RelativeError(Tensor approx, Tensor exact)
    {
        var e = exact.to(ScalarType.Float32);
        return ((approx.to(ScalarType.Float32) - e).norm() / e.norm()).item<float>();
    }
}
