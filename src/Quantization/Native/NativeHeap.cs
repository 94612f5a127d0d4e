using System.Runtime.InteropServices;

namespace VidKV.AI.Quantization.Native;

/// <summary>
/// How glibc's allocator serves libtorch's CPU tensors. By default glibc maps every block over 32 MiB afresh from the
/// kernel and unmaps it when freed, so each large temporary of a prefill (a vision layer's activations at 32 frames are
/// 50 to 200 MB) pays a page fault per 4 KiB page on first touch: an element-wise add of [32, 729, 1152] bf16 took
/// 356 ms that way against 8 ms on reused memory. <see cref="KeepLargeBlocks"/> makes glibc serve large blocks from its
/// heap and keep freed memory for the next one, asks libtorch for transparent huge pages on tensors of 2 MiB and more
/// (<see cref="HugePagesVariable"/>: one fault per 2 MiB instead of per 4 KiB, where the kernel allows it), and
/// <see cref="Release"/> hands the free memory back to the system between requests. Threads other than the main one
/// still get requests over 64 MiB as fresh mappings (glibc's per-thread heaps are at most 64 MiB), so the models keep
/// their CPU temporaries under that size (<c>InPlace.ByRowChunks</c>, the blocked prefill attention).
/// </summary>
/// <remarks>
/// <see cref="TorchRuntime.EnsureLoaded"/> applies <see cref="KeepLargeBlocks"/> on Linux with glibc unless the
/// environment variable <see cref="Variable"/> is <c>system</c>. Only the C heap changes; the .NET heap and GPU memory
/// are unaffected. The trade-off: while a request runs, memory freed by one operation stays with the process for the
/// next, so the resident size follows the request's peak instead of dropping between operations.
/// </remarks>
public static class NativeHeap
{
    /// <summary>Environment variable: <c>system</c> leaves glibc's allocator settings alone.</summary>
    public const string Variable = "VIDKV_NATIVE_HEAP";

    /// <summary>libtorch's switch for 2 MiB-aligned CPU tensors of 2 MiB and more, advised to use transparent huge pages.</summary>
    public const string HugePagesVariable = "THP_MEM_ALLOC_ENABLE";

    private const int MTrimThreshold = -1; // M_TRIM_THRESHOLD
    private const int MMmapMax = -4; // M_MMAP_MAX

    private static readonly object Gate = new();
    private static bool _applied;

    /// <summary>Whether <see cref="KeepLargeBlocks"/> has changed glibc's settings in this process.</summary>
    public static bool Active { get; private set; }

    /// <summary>
    /// Serves large C-heap blocks from glibc's heap instead of fresh mappings and keeps freed memory (up to 2 GiB at the
    /// heap's top) for reuse. Idempotent; returns whether the settings are in effect (false off Linux, without glibc, or
    /// when <see cref="Variable"/> is <c>system</c>).
    /// </summary>
    public static bool KeepLargeBlocks()
    {
        lock (Gate)
        {
            if (_applied)
            {
                return Active;
            }

            _applied = true;
            if (!OperatingSystem.IsLinux()
                || string.Equals(Environment.GetEnvironmentVariable(Variable), "system", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }

            try
            {
                // mallopt returns 1 on success, 0 on error.
                Active = Mallopt(MMmapMax, 0) == 1 && Mallopt(MTrimThreshold, int.MaxValue) == 1;

                // libtorch reads this once, at its first CPU allocation; .NET's own environment does not reach native code.
                if (Active && Environment.GetEnvironmentVariable(HugePagesVariable) is null)
                {
                    _ = SetEnv(HugePagesVariable, "1", 0);
                }
            }
            catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
            {
                Active = false; // not glibc (musl has no mallopt)
            }

            return Active;
        }
    }

    /// <summary>
    /// Returns the C heap's free memory to the system (glibc's <c>malloc_trim</c>) when <see cref="KeepLargeBlocks"/> is
    /// in effect; a no-op otherwise. Memory still held by live tensors is untouched. Returns whether anything was released.
    /// </summary>
    public static bool Release()
    {
        if (!Active)
        {
            return false;
        }

        return MallocTrim(0) == 1;
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Mallopt(int parameter, int value);

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int MallocTrim(nuint pad);
}
