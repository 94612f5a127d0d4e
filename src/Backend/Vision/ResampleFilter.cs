namespace VidKV.AI.Backend.Vision;

/// <summary>
/// A resampling filter as a processor configuration names it: the values are PIL's codes, the numbers stored in the
/// <c>resample</c> field of <c>preprocessor_config.json</c>.
/// </summary>
/// <remarks>
/// Only the filters that transformers' torchvision backend can apply to tensors are supported: <see cref="Nearest"/>
/// (applied as nearest-exact), <see cref="Bilinear"/>, <see cref="Bicubic"/>, and <see cref="Lanczos"/>, which is
/// applied as bicubic, as that backend does with torchvision before 0.27 or off the CPU (with torchvision 0.27+ on
/// the CPU transformers applies real Lanczos; no LLaVA-OneVision checkpoint uses it). Box and Hamming are rejected
/// when a configuration is loaded.
/// </remarks>
public enum ResampleFilter
{
    /// <summary>Nearest neighbour (PIL code 0), applied as PyTorch's <c>nearest-exact</c>, as transformers does.</summary>
    Nearest = 0,

    /// <summary>Lanczos (PIL code 1), applied as bicubic (transformers does the same with torchvision before 0.27).</summary>
    Lanczos = 1,

    /// <summary>Bilinear with antialiasing when downscaling (PIL code 2).</summary>
    Bilinear = 2,

    /// <summary>Bicubic (a = -0.5) with antialiasing when downscaling (PIL code 3).</summary>
    Bicubic = 3,

    /// <summary>Box (PIL code 4); not supported for tensors.</summary>
    Box = 4,

    /// <summary>Hamming (PIL code 5); not supported for tensors.</summary>
    Hamming = 5,
}
