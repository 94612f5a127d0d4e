using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>Seeding for the benchmarks' random inputs and weights.</summary>
internal static class BenchRandom
{
    /// <summary>
    /// Seeds the CPU generator and, where CUDA is present, every CUDA generator: <c>manual_seed</c> alone leaves the CUDA
    /// generators as the process started them, so tensors drawn on the GPU would differ from one process to the next.
    /// </summary>
    public static void Seed(long seed)
    {
        manual_seed(seed);
        if (cuda.is_available())
        {
            cuda.manual_seed_all(seed);
        }
    }

    /// <summary>
    /// Decode benchmarks' keys [b, h, n, d] (float16 on <paramref name="device"/>): N(0, 1) plus a per-channel offset of
    /// N(0, 0.25), with 8 random channels offset by N(0, 100) instead (post-RoPE outlier channels).
    /// </summary>
    public static Tensor OutlierKeys(long b, long h, long n, long d, Device device)
    {
        using var offset = randn(d) * 0.5;
        offset.index_copy_(0, randperm(d).narrow(0, 0, 8), randn(8) * 10);
        using var onDevice = offset.to(device);
        using var noise = randn(new[] { b, h, n, d }, device: device);
        using var sum = noise + onDevice;
        return sum.to(ScalarType.Float16);
    }
}
