namespace VidKV.AI.Quantization.Attention;

/// <summary>Which kernels <see cref="FusedAttention"/> uses.</summary>
public enum FusedKernelPath
{
    /// <summary>
    /// On the CPU the widest path this processor accelerates (AVX-512, else AVX2, else portable); on CUDA the NVRTC
    /// kernel (<see cref="Cuda"/>) when the CUDA driver and NVRTC are found and the shapes fit it, else <see cref="Chunked"/>.
    /// </summary>
    Auto,

    /// <summary>CPU: 512-bit vectors (<see cref="System.Runtime.Intrinsics.Vector512"/>); needs AVX-512 F/BW/CD/DQ/VL.</summary>
    Avx512,

    /// <summary>CPU: 256-bit vectors (<see cref="System.Runtime.Intrinsics.Vector256"/>); needs AVX2.</summary>
    Avx2,

    /// <summary>CPU: scalar code that runs on any processor (the reference the vector paths are checked against).</summary>
    Portable,

    /// <summary>
    /// CUDA tensors: a kernel compiled at run time by NVRTC (from the CUDA libraries of the PyTorch install, or
    /// <c>VIDKV_NVRTC</c>) that reads the packed codes in place; 32 query rows (query heads per KV head × query tokens)
    /// a launch, longer queries in slices of tokens (at most 32 query heads per KV head).
    /// </summary>
    Cuda,

    /// <summary>Any device: chunked TorchSharp operations over runs of 1,024 tokens with an online softmax.</summary>
    Chunked,
}
