using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// Fused decode attention on CUDA tensors: a kernel compiled at run time with NVRTC reads each quantized block's packed
/// codes and metadata where the cache holds them (no copy is rebuilt) — split into runs of <see cref="TokensPerSplit"/>
/// tokens so that a long cache fills the GPU (flash-decoding) — and writes each run's softmax state (max, sum and
/// Σ p·v per query row); the full-precision residual's state comes from TorchSharp operations, and one log-sum-exp
/// merge gives the output. Extra memory: the per-run states (for 64k tokens, 7 query rows and 128 value channels,
/// about 1.8 MiB), the query in each block's channel order, and for protected blocks a token-to-value-row map.
/// </summary>
/// <remarks>
/// The kernel follows <see cref="CpuFusedAttention"/>: a key's score is Σ_c q_c (level_c·s_c + z_c) over outlier
/// channels and 1-bit components (scored against the query's transform, <see cref="ChunkedFusedAttention.BlockQuery"/>);
/// a value is level·s + z per channel (or per token group) and is accumulated with the softmax weight. Code levels come
/// from the same byte tables as the CPU kernels. Launched on the legacy default stream, which orders it with TorchSharp's
/// operations on the same device.
/// </remarks>
internal static class CudaFusedAttention
{
    /// <summary>Tokens one thread block scores (the run length of the split).</summary>
    public const int TokensPerSplit = 128;

    /// <summary>Query rows (query heads per KV head × query tokens) one launch handles.</summary>
    public const int MaxQueryRows = 32;

    private const int Threads = 128;
    private const int MaxSharedBytes = 160 * 1024;
    private const string KernelName = "vidkv_block_attend";

    private static readonly ConcurrentDictionary<int, Lazy<IntPtr>> Kernels = new();
    private static readonly ConcurrentDictionary<(CodeFormat Format, int Mult, int Offset, int Device), Tensor> Tables = new();

    /// <summary>Whether the kernel can run here (CUDA driver and NVRTC found).</summary>
    public static bool IsAvailable => CudaRuntime.IsAvailable;

    /// <summary>Why the kernel cannot run, or what it runs with.</summary>
    public static string Description => CudaRuntime.Description;

    /// <summary>Whether this cache and query shape fit the kernel (else callers use the chunked path).</summary>
    public static bool Fits(QuantizedKVCache cache, Tensor query)
    {
        long hkv = cache.Blocks.Count > 0 ? cache.Blocks[0].Keys.Shape[1] : cache.ResidualKeys!.shape[1];
        long nq = query.shape[1] / hkv * query.shape[2];
        if (!IsAvailable || nq > MaxQueryRows || query.shape[0] * hkv > 65535)
        {
            return false;
        }

        foreach (var block in cache.Blocks)
        {
            long c = (block.Keys.Outliers?.Shape[^1] ?? 0) + (block.Keys.Easy?.Shape[^1] ?? 0);
            if (SharedBytes(nq, c) > MaxSharedBytes)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether the kernel compiles for the device (compiled once per device; a failure is remembered).</summary>
    public static bool Compiles(int device)
    {
        try
        {
            _ = Kernel(Math.Max(0, device));
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale)
    {
        var o = cache.Options;
        long b = query.shape[0], hq = query.shape[1], tq = query.shape[2], d = query.shape[3];
        int device = query.device_index < 0 ? 0 : query.device_index;
        using var scope = NewDisposeScope();
        long hkv = cache.Blocks.Count > 0 ? cache.Blocks[0].Keys.Shape[1] : cache.ResidualKeys!.shape[1];
        long dv = cache.Blocks.Count > 0 ? cache.Blocks[0].Values.Shape[3] : cache.ResidualValues!.shape[3];
        long nq = hq / hkv * tq, n = cache.Length, bh = b * hkv;
        using var factor = scale.ToScalar();
        var q = query.to(ScalarType.Float32).reshape(b, hkv, nq, d).mul(factor);

        long splits = cache.Blocks.Sum(x => (x.Tokens + TokensPerSplit - 1) / TokensPerSplit) + (cache.ResidualLength > 0 ? 1 : 0);
        var outM = empty(new[] { bh, splits, nq }, ScalarType.Float32, query.device);
        var outL = empty(new[] { bh, splits, nq }, ScalarType.Float32, query.device);
        var outAcc = empty(new[] { bh, splits, nq, dv }, ScalarType.Float32, query.device);
        var kernel = Kernel(device);

        long split0 = 0;
        foreach (var block in cache.Blocks)
        {
            using var inner = NewDisposeScope();
            var qb = ChunkedFusedAttention.BlockQuery(block, o, q).contiguous();
            long c = qb.shape[3];
            var keys = block.Keys;
            var values = block.Values;
            Tensor? map = values.ProtectedTokens is null ? null : ValueRowMap(values.ProtectedTokens, block.Tokens);
            bool asymmetric = o.Values == ValueQuantization.Asymmetric;
            long blockSplits = (block.Tokens + TokensPerSplit - 1) / TokensPerSplit;
            var p = new Params
            {
                Query = CudaRuntime.DataPointer(qb),
                OutM = CudaRuntime.DataPointer(outM),
                OutL = CudaRuntime.DataPointer(outL),
                OutAcc = CudaRuntime.DataPointer(outAcc),
                Map = map is null ? IntPtr.Zero : CudaRuntime.DataPointer(map),
                KeyOutliers = Source(keys.Outliers, 1, 0, scaled: true, zero: true, QuantizationAxis.PerChannel, device),
                KeyEasy = o.SignReconstruction == SignReconstruction.ZeroOrScale
                    ? Source(keys.Easy, 1, 0, scaled: true, zero: keys.Easy?.Zero is not null, QuantizationAxis.PerChannel, device)
                    : Source(keys.Easy, 2, -1, scaled: true, zero: keys.Easy?.Zero is not null, QuantizationAxis.PerChannel, device),
                ValueRest = asymmetric
                    ? Source(values.Rest, 1, 0, scaled: true, zero: true, o.ValueAxis, device)
                    : Source(values.Rest, 1, -1, scaled: o.ScaledTernary, zero: false, o.ValueAxis, device),
                ValueProtected = Source(values.Protected, 1, 0, scaled: true, zero: true, o.ValueAxis, device),
                Tokens = block.Tokens,
                Start = block.Start,
                Causal = causal ? 1 : 0,
                CausalBase = n - tq,
                QueryTokens = tq,
                QueryRows = nq,
                Channels = c,
                OutlierChannels = keys.Outliers?.Shape[^1] ?? 0,
                ValueChannels = dv,
                GroupSize = o.GroupSize,
                KvHeads = hkv,
                Split0 = split0,
                Splits = splits,
                TokensPerSplit = TokensPerSplit,
            };
            CudaRuntime.Launch(kernel, device, ((uint)blockSplits, (uint)bh, 1), Threads, (uint)SharedBytes(nq, c), ref p);
            split0 += blockSplits;

            // The kernel reads these tensors; they must outlive it. TorchSharp frees device memory through PyTorch's
            // caching allocator, which reuses it only for work queued after the kernel on the same stream.
            GC.KeepAlive(qb);
            GC.KeepAlive(map);
        }

        if (cache.ResidualLength > 0)
        {
            var rk = cache.ResidualKeys!;
            var rv = cache.ResidualValues!;
            long r = rk.shape[2];
            var scores = matmul(q, rk.to(ScalarType.Float32).transpose(2, 3)); // [B, Hkv, nq, r]
            if (causal)
            {
                var limits = tensor(Enumerable.Range(0, (int)nq).Select(i => n - tq + (i % tq)).ToArray(), ScalarType.Int64, q.device).reshape(1, 1, nq, 1);
                using var first = cache.QuantizedLength.ToScalar();
                using var stop = r.ToScalar();
                var positions = arange(Scalars.ZeroInt64, stop, Scalars.OneInt64, ScalarType.Int64, q.device).add(first, Scalars.OneInt64).reshape(1, 1, 1, r);
                scores = scores.masked_fill(positions.gt(limits), Scalars.NegativeInfinity);
            }

            var m = scores.amax(new[] { -1L }, keepdim: true);
            var safe = m.masked_fill(m.isinf(), Scalars.Zero);
            var e = (scores - safe).exp();
            outM.select(1, split0).copy_(m.reshape(bh, nq));
            outL.select(1, split0).copy_(e.sum(-1).reshape(bh, nq));
            outAcc.select(1, split0).copy_(matmul(e, rv.to(ScalarType.Float32)).reshape(bh, nq, dv));
        }

        // Log-sum-exp merge of every run's state.
        var max = outM.amax(new[] { 1L }, keepdim: true);
        var w = (outM - max).exp(); // [BH, S, nq]
        var sum = (outL * w).sum(1); // [BH, nq]
        var acc = (outAcc * w.unsqueeze(-1)).sum(1); // [BH, nq, Dv]
        var output = (acc / sum.unsqueeze(-1)).reshape(b, hq, tq, dv);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// For each token of a protected block, where its value lies: row j of the protected values as -(j + 1), else its
    /// row among the rest (positions ascending in both, as the quantizer stores them). [B, N] int64.
    /// </summary>
    internal static Tensor ValueRowMap(Tensor protectedTokens, long tokens)
    {
        long b = protectedTokens.shape[0];
        var isProtected = zeros(new[] { b, tokens }, ScalarType.Int64, protectedTokens.device);
        isProtected.scatter_(1, protectedTokens, ones(protectedTokens.shape, ScalarType.Int64, protectedTokens.device));
        var protectedSoFar = isProtected.cumsum(1, ScalarType.Int64); // j + 1 at the j-th protected token
        var restRow = Positions(tokens, protectedTokens.device).sub(protectedSoFar); // t - (protected tokens up to t)
        return where(isProtected.to(ScalarType.Bool), protectedSoFar.neg(), restRow).contiguous();
    }

    private static Tensor Positions(long tokens, Device device)
    {
        using var stop = tokens.ToScalar();
        return arange(Scalars.ZeroInt64, stop, Scalars.OneInt64, ScalarType.Int64, device).unsqueeze(0);
    }

    private static long SharedBytes(long nq, long channels) => 4 * ((nq * channels) + (nq * TokensPerSplit) + (2 * nq));

    private static IntPtr Kernel(int device) => Kernels.GetOrAdd(device, d => new Lazy<IntPtr>(() =>
    {
        var function = CudaRuntime.Compile(KernelSource.Text, "vidkv_fused_attention.cu", d, [KernelName])[KernelName];
        CudaRuntime.SetMaxDynamicSharedMemory(function, MaxSharedBytes, d);
        return function;
    })).Value;

    private static Src Source(QuantizedTensor? q, int mult, int offset, bool scaled, bool zero, QuantizationAxis axis, int device)
    {
        if (q is null)
        {
            return default;
        }

        var table = Tables.GetOrAdd((q.Format, mult, offset, device), key =>
            tensor(CodeTables.Get(key.Format, key.Mult, key.Offset), ScalarType.Float32, new Device(DeviceType.CUDA, key.Device)).DetachFromDisposeScope());
        var meta = scaled ? q.Scale : zero ? q.Zero : null;
        return new Src
        {
            Codes = CudaRuntime.DataPointer(q.Codes),
            Table = CudaRuntime.DataPointer(table),
            Scale = scaled ? CudaRuntime.DataPointer(q.Scale ?? throw new InvalidOperationException("A quantized tensor lacks the scale its quantizer reads.")) : IntPtr.Zero,
            Zero = zero ? CudaRuntime.DataPointer(q.Zero ?? throw new InvalidOperationException("A quantized tensor lacks the zero point its quantizer reads.")) : IntPtr.Zero,
            Rows = q.Shape[^2],
            RowBytes = q.Codes.shape[^1],
            PerByte = CodePacking.CodesPerByte(q.Format),
            Channels = q.Shape[^1],
            MetaType = meta?.dtype switch
            {
                null or ScalarType.Float32 => 0,
                ScalarType.Float16 => 1,
                ScalarType.BFloat16 => 2,
                var other => throw new NotSupportedException($"Quantization metadata of type {other} is not read by the CUDA kernel; allowed: Float32, Float16, BFloat16."),
            },
            PerToken = axis == QuantizationAxis.PerToken ? 1 : 0,
        };
    }

    /// <summary>One packed source as the kernel reads it (layout shared with the CUDA struct <c>Src</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Src
    {
        public IntPtr Codes;
        public IntPtr Table;
        public IntPtr Scale;
        public IntPtr Zero;
        public long Rows;
        public long RowBytes;
        public long PerByte;
        public long Channels;
        public long MetaType;
        public long PerToken;
    }

    /// <summary>The kernel's parameters (layout shared with the CUDA struct <c>Params</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public IntPtr Query;
        public IntPtr OutM;
        public IntPtr OutL;
        public IntPtr OutAcc;
        public IntPtr Map;
        public Src KeyOutliers;
        public Src KeyEasy;
        public Src ValueRest;
        public Src ValueProtected;
        public long Tokens;
        public long Start;
        public long Causal;
        public long CausalBase;
        public long QueryTokens;
        public long QueryRows;
        public long Channels;
        public long OutlierChannels;
        public long ValueChannels;
        public long GroupSize;
        public long KvHeads;
        public long Split0;
        public long Splits;
        public long TokensPerSplit;
    }
}
