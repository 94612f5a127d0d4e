namespace VidKV.AI.Quantization.Attention;

/// <summary>Which instruction set the CPU kernels of <see cref="FusedAttention"/> use.</summary>
public enum FusedKernelPath
{
    /// <summary>The widest path this processor accelerates: AVX-512, else AVX2, else portable.</summary>
    Auto,

    /// <summary>512-bit vectors (<see cref="System.Runtime.Intrinsics.Vector512"/>); needs AVX-512 F/BW/CD/DQ/VL.</summary>
    Avx512,

    /// <summary>256-bit vectors (<see cref="System.Runtime.Intrinsics.Vector256"/>); needs AVX2.</summary>
    Avx2,

    /// <summary>Scalar code that runs on any processor (the reference the vector paths are checked against).</summary>
    Portable,
}
