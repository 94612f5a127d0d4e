using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Attention.Cuda;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// The copies of <see cref="QuantizedKVCache.AppendDecodeStep"/>: each step's row of keys and values [N, H, 1, D] into
/// the residual buffers of its cache, at the cache's next position. On CUDA one NVRTC kernel launch for up to
/// <see cref="MaxEntries"/> caches; on the CPU a copy per cache and head; elsewhere (or without NVRTC) one tensor copy
/// per cache.
/// </summary>
internal static unsafe class ResidualAppend
{
    /// <summary>Caches per kernel launch (the parameter struct stays within CUDA's 4 KiB).</summary>
    internal const int MaxEntries = 48;

    internal const string Source = """
        typedef long long i64;
        struct Entry { const char* sk; const char* sv; char* dk; char* dv; i64 kHead, vHead, kRow, vRow; };
        struct Params { i64 heads, count; Entry e[48]; };
        // Block (entry, head): the head's row of keys and of values, in 2-byte units (rows of 16- and 32-bit elements).
        extern "C" __global__ void vidkv_append_rows(const Params p) {
            const Entry& e = p.e[blockIdx.x];
            const i64 h = blockIdx.y;
            const unsigned short* sk = (const unsigned short*)(e.sk + h * e.kRow);
            unsigned short* dk = (unsigned short*)(e.dk + h * e.kHead);
            for (i64 i = threadIdx.x; i < e.kRow / 2; i += blockDim.x) dk[i] = sk[i];
            const unsigned short* sv = (const unsigned short*)(e.sv + h * e.vRow);
            unsigned short* dv = (unsigned short*)(e.dv + h * e.vHead);
            for (i64 i = threadIdx.x; i < e.vRow / 2; i += blockDim.x) dv[i] = sv[i];
        }
        """;

    private static readonly ConcurrentDictionary<int, Lazy<IntPtr>> Kernels = new();

    /// <summary>
    /// Where row <paramref name="Row"/> of <paramref name="Keys"/> [N, H, 1, D] and <paramref name="Values"/> (contiguous,
    /// in the residual's type) go: token <paramref name="Position"/> of the buffers [1, H, <paramref name="Capacity"/>, D].
    /// </summary>
    internal readonly record struct Slot(Tensor Keys, Tensor Values, int Row, Tensor KeyStore, Tensor ValueStore, long Position, long Capacity);

    /// <summary>Copies every slot's row into its buffers, on <paramref name="device"/>.</summary>
    public static void Copy(IReadOnlyList<Slot> slots, Device device)
    {
        if (device.type == DeviceType.CPU)
        {
            foreach (var s in slots)
            {
                long heads = s.Keys.size(1);
                CopyRows(s.Keys, s.KeyStore, s, heads);
                CopyRows(s.Values, s.ValueStore, s, heads);
            }

            return;
        }

        if (device.type == DeviceType.CUDA && Kernel(Math.Max(0, device.index)) is { } kernel && kernel != IntPtr.Zero)
        {
            Launch(slots, kernel, Math.Max(0, device.index));
            return;
        }

        foreach (var s in slots)
        {
            using var scope = NewDisposeScope();
            s.KeyStore.narrow(2, s.Position, 1).copy_(s.Keys.narrow(0, s.Row, 1));
            s.ValueStore.narrow(2, s.Position, 1).copy_(s.Values.narrow(0, s.Row, 1));
        }
    }

    private static void CopyRows(Tensor source, Tensor store, Slot s, long heads)
    {
        long row = source.size(3) * source.ElementSize;
        byte* from = (byte*)CudaRuntime.DataPointer(source) + (s.Row * heads * row);
        byte* to = (byte*)CudaRuntime.DataPointer(store) + (s.Position * row);
        for (long h = 0; h < heads; h++)
        {
            Buffer.MemoryCopy(from + (h * row), to + (h * s.Capacity * row), row, row);
        }
    }

    private static void Launch(IReadOnlyList<Slot> slots, IntPtr kernel, int device)
    {
        long heads = slots[0].Keys.size(1);
        var p = new Params { Heads = heads };
        for (int start = 0; start < slots.Count; start += MaxEntries)
        {
            int count = Math.Min(MaxEntries, slots.Count - start);
            for (int i = 0; i < count; i++)
            {
                var s = slots[start + i];
                long kRow = s.Keys.size(3) * s.Keys.ElementSize, vRow = s.Values.size(3) * s.Values.ElementSize;
                p.Entries[i] = new Entry
                {
                    SourceKeys = CudaRuntime.DataPointer(s.Keys) + (nint)(s.Row * heads * kRow),
                    SourceValues = CudaRuntime.DataPointer(s.Values) + (nint)(s.Row * heads * vRow),
                    Keys = CudaRuntime.DataPointer(s.KeyStore) + (nint)(s.Position * kRow),
                    Values = CudaRuntime.DataPointer(s.ValueStore) + (nint)(s.Position * vRow),
                    KeyHead = s.Capacity * kRow,
                    ValueHead = s.Capacity * vRow,
                    KeyRow = kRow,
                    ValueRow = vRow,
                };
            }

            p.Count = count;
            CudaRuntime.Launch(kernel, device, ((uint)count, (uint)heads, 1), 128, 0, ref p);
        }
    }

    /// <summary>The kernel on the device, or zero where NVRTC or the driver is missing (remembered).</summary>
    private static IntPtr Kernel(int device) => !CudaRuntime.IsAvailable ? IntPtr.Zero : Kernels.GetOrAdd(device, dev => new Lazy<IntPtr>(() =>
    {
        try
        {
            return CudaRuntime.Compile(Source, "vidkv_append.cu", dev, new[] { "vidkv_append_rows" })["vidkv_append_rows"];
        }
        catch (InvalidOperationException)
        {
            return IntPtr.Zero;
        }
    })).Value;

    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public IntPtr SourceKeys;
        public IntPtr SourceValues;
        public IntPtr Keys;
        public IntPtr Values;
        public long KeyHead;
        public long ValueHead;
        public long KeyRow;
        public long ValueRow;
    }

    [System.Runtime.CompilerServices.InlineArray(MaxEntries)]
    private struct Entries
    {
        private Entry _first;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public long Heads;
        public long Count;
        public Entries Entries;
    }
}
