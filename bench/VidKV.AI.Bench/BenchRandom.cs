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
}
