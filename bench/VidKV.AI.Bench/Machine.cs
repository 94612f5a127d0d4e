using System.Runtime.InteropServices;

namespace VidKV.AI.Bench;

/// <summary>The machine a benchmark ran on, as its reports name it.</summary>
internal static class Machine
{
    /// <summary>CPU model, logical processors, architecture, operating system and .NET version.</summary>
    public static string Description =>
        $"{CpuModel()}, {Environment.ProcessorCount} logical processors, {RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.OSDescription}, .NET {Environment.Version}";

    /// <summary>Fails unless CUDA is usable through the loaded libtorch.</summary>
    /// <exception cref="InvalidOperationException">No CUDA device; the message says how to point at one.</exception>
    public static void RequireCuda()
    {
        if (!VidKV.AI.Quantization.Native.TorchRuntime.TryInitializeCuda())
        {
            throw new InvalidOperationException(
                $"--device cuda: no CUDA device through {VidKV.AI.Quantization.Native.TorchRuntime.Description}; set {VidKV.AI.Quantization.Native.TorchRuntime.LibTorchVariable} to a CUDA build of PyTorch's torch/lib (or 'python').");
        }
    }

    /// <summary>Writes a report to <paramref name="path"/> (creating its folder) and says where on stderr.</summary>
    public static void WriteReport(string path, string report)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, report);
        Console.Error.WriteLine($"wrote {full}");
    }

    private static string CpuModel()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':', StringComparison.Ordinal) is int colon and >= 0)
                {
                    return line[(colon + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return "unknown CPU";
    }
}
