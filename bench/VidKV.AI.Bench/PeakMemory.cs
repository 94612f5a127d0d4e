using System.Globalization;
using System.Runtime.InteropServices;

namespace VidKV.AI.Bench;

/// <summary>
/// Peak resident memory added by one operation on Linux: the kernel's high-water mark (VmHWM) is reset through
/// /proc/self/clear_refs before the operation and read after it. glibc is told to serve every allocation of 64 KiB or
/// more with its own mapping and to trim free memory first, so that the high-water mark sees each temporary
/// instead of reusing pages freed by an earlier call.
/// </summary>
internal static partial class PeakMemory
{
    private const int MmapThreshold = -3;

    /// <summary>Whether the measurement works here (Linux with a writable clear_refs).</summary>
    public static bool Available { get; private set; }

    /// <summary>Sets glibc's allocation policy; call once before measuring.</summary>
    public static void Initialize()
    {
        try
        {
            _ = mallopt(MmapThreshold, 64 * 1024);
            File.WriteAllText("/proc/self/clear_refs", "5");
            Available = Read("VmHWM:") > 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            Available = false;
        }
    }

    /// <summary>Runs <paramref name="action"/> once; returns how far resident memory rose above where it started (bytes), or -1.</summary>
    public static long Measure(Action action)
    {
        if (!Available)
        {
            action();
            return -1;
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        _ = malloc_trim(0);
        File.WriteAllText("/proc/self/clear_refs", "5");
        long before = Read("VmRSS:");
        action();
        long peak = Read("VmHWM:");
        return Math.Max(0, peak - before);
    }

    private static long Read(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
            {
                string kb = line[key.Length..].Trim().Split(' ')[0];
                return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
            }
        }

        return -1;
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int malloc_trim(nuint pad);
}
