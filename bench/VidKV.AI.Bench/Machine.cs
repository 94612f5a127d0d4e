using System.Runtime.InteropServices;

namespace VidKV.AI.Bench;

/// <summary>The machine a benchmark ran on, as its reports name it.</summary>
internal static class Machine
{
    /// <summary>CPU model, logical processors, architecture, operating system and .NET version.</summary>
    public static string Description =>
        $"{CpuModel()}, {Environment.ProcessorCount} logical processors, {RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.OSDescription}, .NET {Environment.Version}";

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
