using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Quantization.Tests.Native;

public sealed class NativeHeapTests
{
    [Fact]
    public void LargeTensorsComeFromTheHeapAndTheirMemoryIsHandedBackByRelease()
    {
        // This suite runs on Linux with glibc (Debian); the CI does not set VIDKV_NATIVE_HEAP.
        Assert.True(OperatingSystem.IsLinux(), "NativeHeap is tested on Linux with glibc only.");
        Assert.Null(Environment.GetEnvironmentVariable(NativeHeap.Variable));
        TorchRuntime.EnsureLoaded();
        Assert.True(NativeHeap.Active);
        Assert.True(NativeHeap.KeepLargeBlocks()); // idempotent

        long mappedBefore = (long)MallInfo2().hblkhd;
        // Above glibc's largest mmap threshold (32 MiB), below the 64 MiB a thread's own heap can serve: test threads are not
        // the main thread.
        const long bytes = 48L << 20;
        using (var t = torch.ones(bytes / 4, dtype: torch.float32))
        {
            using var sum = t.sum();
            Assert.Equal(bytes / 4, (long)sum.item<float>());

            // Served from the heap: the bytes held in separate mappings did not grow by the tensor's size.
            long mappedDuring = (long)MallInfo2().hblkhd;
            Assert.True(mappedDuring - mappedBefore < bytes / 2, $"mapped bytes grew from {mappedBefore} to {mappedDuring}");
        }

        // The tensor's 48 MiB are free in the heap now; Release returns them to the system.
        Assert.True(NativeHeap.Release());
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2Result
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2Result MallInfo2();
}
