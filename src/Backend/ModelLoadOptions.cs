using static TorchSharp.torch;

namespace VidKV.AI.Backend;

/// <summary>Where and in which type a model is loaded.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Computation type: Float32 (default) or BFloat16 on CPU; Float16 or BFloat16 on CUDA.</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;

    /// <summary>Device; <see langword="null"/> for the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// Options from their names, as configuration files give them: a device ("cpu", "cuda", "cuda:1") and a type
    /// ("float32", "bfloat16", "float16"; also "fp32", "bf16", "fp16").
    /// </summary>
    /// <exception cref="ArgumentException">A name is not one of those; the message names it and the allowed ones.</exception>
    public static ModelLoadOptions Parse(string device, string dtype)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        ArgumentException.ThrowIfNullOrWhiteSpace(dtype);
        var type = dtype.Trim().ToLowerInvariant() switch
        {
            "float32" or "fp32" or "float" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" or "half" => ScalarType.Float16,
            _ => throw new ArgumentException($"The model type '{dtype}' is not known; allowed: float32, bfloat16, float16.", nameof(dtype)),
        };
        string name = device.Trim().ToLowerInvariant();
        bool known = name == "cpu" || name == "cuda" || (name.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(name["cuda:".Length..], out int index) && index >= 0);
        if (!known)
        {
            throw new ArgumentException($"The device '{device}' is not known; allowed: cpu, cuda, cuda:N.", nameof(device));
        }

        return new ModelLoadOptions { DType = type, Device = name == "cpu" ? null : new Device(name) };
    }
}
