using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// Fused decode attention on CUDA tensors with kernels compiled at run time by NVRTC (<see cref="KernelSource"/>): per
/// quantized block, one launch puts the query rows in the block's channel order (outlier channels, then the 1-bit
/// components' weights: the query's transform, no inverse FFT of the keys) and one reads the block's packed codes and
/// metadata where the cache holds them — split into runs of whole chunks of <see cref="KernelSource.TokensPerRun"/>
/// tokens so that a long cache fills the GPU (flash-decoding), each chunk staged in shared memory — writing each run's
/// softmax state (max, sum and Σ p·v per query row); the full-precision residual goes through the same kernel as raw
/// keys and values; one launch merges the states (log-sum-exp) into the output. Nothing the size of the cache is
/// allocated: runs are lengthened until their states fit in 8 % of a block's bytes (measured on the H200 at 64k
/// tokens: 1.22 MiB of temporaries, output included, for a 15.5 MiB cache), plus the transformed query rows, and for
/// protected blocks a token-to-value-row map (8 bytes a token).
/// </summary>
/// <remarks>
/// The arithmetic follows <see cref="CpuFusedAttention"/>: a key's score is Σ_c q_c (level_c·s_c + z_c) over outlier
/// channels and 1-bit components; a value is level·s + z per channel (or per token group). Kernels run on the legacy
/// default stream, which orders them with TorchSharp's operations on the same device; tensors they read are released
/// to PyTorch's caching allocator, which reuses memory only for work queued after them on that stream.
/// </remarks>
internal static class CudaFusedAttention
{
    /// <summary>Query rows (query heads per KV head × query tokens) the kernels handle.</summary>
    public const int MaxQueryRows = 32;

    private const int MaxSharedBytes = 160 * 1024;

    /// <summary>Most bytes of run states per byte of a block: runs are made longer until their states fit.</summary>
    private const double StateShare = 0.08;

    private static readonly ConcurrentDictionary<int, Lazy<IReadOnlyDictionary<string, IntPtr>>> Modules = new();
    private static readonly ConcurrentDictionary<(OneBitKeyMode Mode, long Channels, int Device), Tensor> Transforms = new();
    private static readonly ConditionalWeakTable<QuantizedBlock, BlockLaunch> Launches = new();

    /// <summary>Bytes of the device tensors the last call on this thread allocated: its extra memory (the cache is read in place).</summary>
    [ThreadStatic]
    private static long _lastTemporaryBytes;

    /// <summary>Bytes of the device tensors the last <see cref="Attend"/> on this thread allocated, output included.</summary>
    public static long LastTemporaryBytes => _lastTemporaryBytes;

    /// <summary>Whether the kernels can run here (CUDA driver and NVRTC found).</summary>
    public static bool IsAvailable => CudaRuntime.IsAvailable;

    /// <summary>Why the kernels cannot run, or what they run with.</summary>
    public static string Description => CudaRuntime.Description;

    /// <summary>Whether this cache and query shape fit the kernels (else callers use the chunked path).</summary>
    public static bool Fits(QuantizedKVCache cache, Tensor query) => Fits(cache, query.size(0), query.size(1), query.size(2), query.size(3), query.dtype);

    /// <summary>Whether this cache fits the kernels for queries [batch, Hq, Tq, D] of the given type.</summary>
    public static bool Fits(QuantizedKVCache cache, long batch, long queryHeads, long queryTokens, long dim, ScalarType queryType)
    {
        var (hkv, dv) = Geometry(cache);
        long perLaunch = TokensPerLaunch(cache, queryHeads, queryTokens); // longer queries run in slices
        long nq = queryHeads / hkv * perLaunch;
        if (!IsAvailable || perLaunch < 1 || batch * hkv > 65535 || dv > KernelSource.Threads || queryType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            return false;
        }

        int rows = RowCount(nq);
        long metaGroups = MetaGroups(cache.Options.GroupSize);
        foreach (var block in cache.Blocks)
        {
            var launch = LaunchOf(block, cache.Options);
            if (AttendSharedBytes(rows, launch.Channels, dv, metaGroups, launch.ValueStride, launch.KeyRowBytes) > MaxSharedBytes)
            {
                return false;
            }
        }

        return AttendSharedBytes(rows, dim, dv) <= MaxSharedBytes && 4L * nq * dim <= MaxSharedBytes;
    }

    /// <summary>KV heads and value channels of a non-empty cache.</summary>
    private static (long KvHeads, long ValueChannels) Geometry(QuantizedKVCache cache) => cache.Blocks.Count > 0
        ? (cache.Blocks[0].Keys.Shape[1], cache.Blocks[0].Values.Shape[3])
        : (cache.ResidualKeys!.size(1), cache.ResidualValues!.size(3));

    private static BlockLaunch LaunchOf(QuantizedBlock block, KVCacheOptions options) => Launches.GetValue(block, x => new BlockLaunch(x, options));

    /// <summary>Whether the kernels compile for the device (compiled once per device; a failure is remembered).</summary>
    public static bool Compiles(int device)
    {
        try
        {
            _ = Module(Math.Max(0, device));
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Which kernel the last <see cref="Attend"/> on this thread ran.</summary>
    public static string LastKernel => _lastKernel ?? "none";

    [ThreadStatic]
    private static string? _lastKernel;

    /// <summary>
    /// Set to <c>general</c> to run the general kernels even where the single-launch tensor-core kernel fits, or to
    /// <c>mma-generic</c> to run the tensor-core kernel that reads the cache's geometry at run time instead of the
    /// instantiation specialized for it (to compare them in one run).
    /// </summary>
    public const string KernelVariable = "VIDKV_CUDA_ATTENTION";

    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale)
    {
        // More query rows per KV head than a launch takes (a question's tokens over a remembered video): the query's
        // tokens in slices, each slice's causal limit where its own last token is.
        long tq = query.size(2), perLaunch = TokensPerLaunch(cache, query.size(1), tq);
        if (perLaunch < tq)
        {
            using var scope = NewDisposeScope();
            var slices = new List<Tensor>();
            long temporary = 0;
            for (long s = 0; s < tq; s += perLaunch)
            {
                long len = Math.Min(perLaunch, tq - s);
                slices.Add(AttendGeneral(cache, query.narrow(2, s, len), causal, scale, cache.Length - tq + s));
                temporary = Math.Max(temporary, _lastTemporaryBytes);
            }

            var output = cat(slices, 2);
            _lastTemporaryBytes = temporary + Bytes(output);
            _lastKernel = $"general (prep, attend, merge launches per block), query in {slices.Count} slices";
            return output.MoveToOuterDisposeScope();
        }

        if (Environment.GetEnvironmentVariable(KernelVariable) != "general" && MmaAttention.Fits(cache, query) && MmaAttention.Compiles(Math.Max(0, query.device_index), cache))
        {
            var result = MmaAttention.Attend(cache, query, causal, scale, out long bytes);
            _lastTemporaryBytes = bytes;
            _lastKernel = MmaAttention.Generic ? "tensor cores, one launch, geometry read at run time" : "tensor cores, one launch";
            return result;
        }

        _lastKernel = "general (prep, attend, merge launches per block)";
        return AttendGeneral(cache, query, causal, scale, cache.Length - query.size(2));
    }

    /// <summary>Query tokens one launch of the general kernels takes: all of them when their rows per KV head fit
    /// <see cref="MaxQueryRows"/>, else as many as fit (0 when not even one token's rows fit).</summary>
    private static long TokensPerLaunch(QuantizedKVCache cache, long queryHeads, long queryTokens)
    {
        var (hkv, _) = Geometry(cache);
        long groups = queryHeads / hkv;
        return groups * queryTokens <= MaxQueryRows ? queryTokens : MaxQueryRows / groups;
    }

    /// <summary>The general kernels; query token t sees the keys at positions up to <paramref name="causalBase"/> + t when causal.</summary>
    private static Tensor AttendGeneral(QuantizedKVCache cache, Tensor query, bool causal, double scale, long causalBase)
    {
        var o = cache.Options;
        long b = query.size(0), hq = query.size(1), tq = query.size(2), d = query.size(3);
        int device = Math.Max(0, query.device_index);
        var module = Module(device);
        using var scope = NewDisposeScope();
        var (hkv, dv) = Geometry(cache);
        long nq = hq / hkv * tq, bh = b * hkv;
        int rows = RowCount(nq);
        int tps = KernelSource.TokensPerRun;

        // [B, Hq, Tq, D] is [B·Hkv, nq, D] in memory: the query rows of one KV head are its heads' tokens. The prep
        // kernel reads float32, float16 and bfloat16 queries as they are.
        long temporary = 0;
        Tensor Contiguous(Tensor t)
        {
            if (t.is_contiguous())
            {
                return t;
            }

            var copy = t.contiguous();
            temporary += Bytes(copy);
            return copy;
        }

        var q = Contiguous(query);
        var residualKeys = cache.ResidualLength > 0 ? Contiguous(cache.ResidualKeys!) : null;
        var residualValues = cache.ResidualLength > 0 ? Contiguous(cache.ResidualValues!) : null;
        // One run description per launch: the blocks in order, then the residual.
        var blocks = cache.Blocks.Select(x => LaunchOf(x, o)).ToList();
        var sources = new List<Run>();
        long metaGroups = MetaGroups(o.GroupSize);
        long stateBytesPerRun = 4 * nq * (dv + 2);
        foreach (var launch in blocks)
        {
            // Runs of whole chunks of TPS tokens, few enough that their states stay under 8 % of the block's bytes.
            long maxRuns = Math.Max(1, (long)(StateShare * launch.Bytes / bh / stateBytesPerRun));
            long chunks = Math.Max(1, (((launch.Tokens + tps - 1) / tps) + maxRuns - 1) / maxRuns);
            sources.Add(new Run(launch.Tokens, launch.Channels, chunks, metaGroups, launch.ValueStride, launch.KeyRowBytes));
        }

        if (residualKeys is not null)
        {
            long r = residualKeys.size(2);
            sources.Add(new Run(r, d, (r + tps - 1) / tps, 0, 0, 0));
        }

        long runs = sources.Sum(x => x.Runs);
        var state = empty(new[] { (bh * runs * nq * (2 + dv)) + sources.Sum(x => bh * rows * x.Channels) }, ScalarType.Float32, query.device);
        var output = empty(new[] { b, hq, tq, dv }, ScalarType.Float32, query.device);
        temporary += Bytes(state) + Bytes(output);
        IntPtr statePointer = CudaRuntime.DataPointer(state);
        IntPtr outM = statePointer, outL = outM + (nint)(4 * bh * runs * nq), outAcc = outL + (nint)(4 * bh * runs * nq);
        IntPtr scratch = outAcc + (nint)(4 * bh * runs * nq * dv);
        IntPtr qPointer = CudaRuntime.DataPointer(q);
        long queryType = MetaType(q.dtype);
        var p = new Params
        {
            OutM = outM,
            OutL = outL,
            OutAcc = outAcc,
            Start = 0,
            Causal = causal ? 1 : 0,
            CausalBase = causalBase,
            QueryTokens = tq,
            QueryRows = nq,
            ValueChannels = dv,
            GroupSize = o.GroupSize,
            KvHeads = hkv,
            Runs = runs,
        };

        long run0 = 0;
        void Launch(Run run, Prep prep, int prepShared)
        {
            long channels = run.Channels;
            prep.Query = qPointer;
            prep.QueryType = queryType;
            prep.Rows = scratch;
            prep.QueryRows = nq;
            prep.Dim = d;
            prep.Channels = channels;
            prep.Scale = (float)scale;
            CudaRuntime.Launch(module[$"vidkv_prep_{rows}"], device, ((uint)bh, 1, 1), KernelSource.Threads, (uint)prepShared, ref prep);
            p.Rows = scratch;
            p.Channels = channels;
            p.Tokens = run.Tokens;
            p.Run0 = run0;
            p.Chunks = run.Chunks;
            p.MetaGroups = run.MetaGroups;
            p.ValueStride = run.ValueStride;
            CudaRuntime.Launch(module[$"vidkv_attend_{rows}"], device, ((uint)run.Runs, (uint)bh, 1), KernelSource.Threads, (uint)AttendSharedBytes(rows, channels, dv, run.MetaGroups, run.ValueStride, run.KeyRowBytes), ref p);
            run0 += run.Runs;
            scratch += (nint)(4 * bh * rows * channels);
        }

        for (int i = 0; i < blocks.Count; i++)
        {
            var (block, launch) = (cache.Blocks[i], blocks[i]);
            var map = block.Values.ProtectedTokens is null ? null : ValueRowMap(block.Values.ProtectedTokens, block.Tokens);
            temporary += map is null ? 0 : Bytes(map);
            var transform = launch.Prep.EasyIndex == IntPtr.Zero || o.OneBitKeys == OneBitKeyMode.TimeDomain ? null : Transform(o.OneBitKeys, launch.Prep.EasyChannels, device);
            p.Map = map is null ? IntPtr.Zero : CudaRuntime.DataPointer(map);
            p.KeyOutliers = launch.KeyOutliers;
            p.KeyEasy = launch.KeyEasy;
            p.ValueRest = launch.ValueRest;
            p.ValueProtected = launch.ValueProtected;
            p.OutlierChannels = launch.Prep.OutlierChannels;
            p.Start = block.Start;
            var prep = launch.Prep;
            prep.Weights = transform is null ? IntPtr.Zero : CudaRuntime.DataPointer(transform);
            Launch(sources[i], prep, (int)(4 * nq * prep.EasyChannels));
        }

        if (residualKeys is not null)
        {
            p.Map = IntPtr.Zero;
            p.KeyOutliers = Raw(residualKeys);
            p.KeyEasy = default;
            p.ValueRest = Raw(residualValues!);
            p.ValueProtected = default;
            p.OutlierChannels = d;
            p.Start = cache.QuantizedLength;
            Launch(sources[^1], default, 0);
        }

        var merge = new Merge
        {
            M = outM,
            L = outL,
            Acc = outAcc,
            Output = CudaRuntime.DataPointer(output),
            BatchHeads = bh,
            Runs = runs,
            QueryRows = nq,
            ValueChannels = dv,
        };
        long total = bh * nq * dv;
        CudaRuntime.Launch(module["vidkv_merge"], device, ((uint)((total + KernelSource.Threads - 1) / KernelSource.Threads), 1, 1), KernelSource.Threads, 0, ref merge);
        _lastTemporaryBytes = temporary;
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One batched decode step: sequence i (<paramref name="caches"/>[i], one batch item, distinct caches) attends with row
    /// <paramref name="rows"/>[i] of <paramref name="query"/> [N, Hq, Tq, D] (contiguous) and writes the same row of
    /// <paramref name="output"/> (float32 [N, Hq, Tq, Dv], contiguous). Caches that fit the single-launch tensor-core
    /// kernel share one launch (per <see cref="MmaKernelSource.MaxSequences"/> sequences and per kind of cache); the others
    /// run one call each (the general kernels). <paramref name="matchSingleCalls"/>: split each cache as a call for it alone
    /// does (bit for bit that call's result), else for its share of the GPU. Every cache must fit the kernels (<see cref="Fits(QuantizedKVCache, long, long, long, long, ScalarType)"/>).
    /// </summary>
    public static void AttendBatch(IReadOnlyList<QuantizedKVCache> caches, IReadOnlyList<int> rows, Tensor query, Tensor output, bool causal, double scale, bool matchSingleCalls)
    {
        int device = Math.Max(0, query.device_index);
        long hq = query.size(1), tq = query.size(2);
        bool tensorCores = Environment.GetEnvironmentVariable(KernelVariable) != "general";
        var groups = new Dictionary<(MmaAttention.LaunchShape, ScalarType?), (List<QuantizedKVCache> Caches, List<int> Rows)>();
        long temporary = output.NumberOfElements * 4;
        int alone = 0;
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i];
            if (tensorCores && MmaAttention.Fits(cache, 1, hq, tq, query.dtype) && MmaAttention.Compiles(device, cache))
            {
                var key = MmaAttention.BatchKey(cache);
                if (!groups.TryGetValue(key, out var group))
                {
                    groups[key] = group = (new List<QuantizedKVCache>(), new List<int>());
                }

                group.Caches.Add(cache);
                group.Rows.Add(rows[i]);
                continue;
            }

            using var scope = NewDisposeScope();
            output.narrow(0, rows[i], 1).copy_(Attend(cache, query.narrow(0, rows[i], 1), causal, scale));
            temporary += _lastTemporaryBytes;
            alone++;
        }

        foreach (var (batch, groupRows) in groups.Values)
        {
            MmaAttention.Launch(batch, groupRows, query, output, causal, scale, matchSingleCalls ? 1 : batch.Count);
        }

        _lastTemporaryBytes = temporary;
        _lastKernel = groups.Count == 0
            ? $"general (prep, attend, merge launches per block), {alone} sequence(s) one call each"
            : $"tensor cores, one launch for {caches.Count - alone} sequence(s) in {groups.Count} kind(s){(alone > 0 ? $"; {alone} one call each" : string.Empty)}";
    }

    /// <summary>
    /// For each token of a protected block, where its value lies: row j of the protected values as -(j + 1), else its
    /// row among the rest (positions ascending in both, as the quantizer stores them). [B, N] int64.
    /// </summary>
    internal static Tensor ValueRowMap(Tensor protectedTokens, long tokens)
    {
        long b = protectedTokens.size(0);
        var isProtected = zeros(new[] { b, tokens }, ScalarType.Int64, protectedTokens.device);
        isProtected.scatter_(1, protectedTokens, ones(protectedTokens.shape, ScalarType.Int64, protectedTokens.device));
        var protectedSoFar = isProtected.cumsum(1, ScalarType.Int64); // j + 1 at the j-th protected token
        var restRow = Positions(tokens, protectedTokens.device).sub(protectedSoFar); // t - (protected tokens up to t)
        return where(isProtected.to(ScalarType.Bool), protectedSoFar.neg(), restRow).contiguous();
    }

    /// <summary>
    /// The weights [De, comps] that turn the query's 1-bit channels into the weights of the stored components
    /// (<see cref="CpuFusedAttention.EasyWeights"/> of each unit vector), on the device; made once per mode and size.
    /// </summary>
    private static Tensor Transform(OneBitKeyMode mode, long channels, int device) => Transforms.GetOrAdd((mode, channels, device), key =>
    {
        using var cpu = TransformMatrix(key.Mode, key.Channels);
        return cpu.to(new Device(DeviceType.CUDA, key.Device)).DetachFromDisposeScope();
    });

    /// <summary>The [De, comps] matrix W with q·W = the component weights of <see cref="CpuFusedAttention.EasyWeights"/>, float32 on the CPU.</summary>
    internal static unsafe Tensor TransformMatrix(OneBitKeyMode mode, long channels)
    {
        long comps = OneBitKeyQuantizer.ComponentCount(mode, channels);
        var w = new float[channels * comps];
        var unit = new double[channels];
        fixed (float* row = w)
        {
            for (int j = 0; j < channels; j++)
            {
                Array.Clear(unit);
                unit[j] = 1;
                CpuFusedAttention.EasyWeights(unit, mode, row + (j * comps));
            }
        }

        return tensor(w, new[] { channels, comps });
    }

    private static long Bytes(Tensor t) => t.NumberOfElements * t.ElementSize;

    private static int RowCount(long nq) => KernelSource.RowCounts.First(r => r >= nq);

    private static Tensor Positions(long tokens, Device device)
    {
        using var stop = tokens.ToScalar();
        return arange(Scalars.ZeroInt64, stop, Scalars.OneInt64, ScalarType.Int64, device).unsqueeze(0);
    }

    /// <summary>
    /// Dynamic shared memory of the attend kernel, laid out as the kernel lays it out (float arrays 16-byte aligned): the
    /// query rows (transposed), scores, softmax state, the partial sums of threads that share a value channel, each key
    /// channel's (scale, zero) for the groups a chunk touches, then each token's value row and source and the chunk's
    /// staged value and key rows.
    /// </summary>
    private static long AttendSharedBytes(long rows, long channels, long dv, long metaGroups = 0, long valueStride = 0, long keyRowBytes = 0)
    {
        static long Align4(long f) => (f + 3) & ~3L;
        long tps = KernelSource.TokensPerRun, lanes = KernelSource.Threads / dv;
        long floats = Align4(rows * channels) + (rows * tps) + Align4(3 * rows) + Align4(lanes > 1 ? lanes * rows * dv : 0) + Align4(2 * metaGroups * channels);
        return (4 * floats) + (8 * tps) + tps + (tps * valueStride) + (tps * keyRowBytes);
    }

    /// <summary>Groups of G tokens a chunk of TokensPerRun tokens starting at a multiple of TokensPerRun can touch.</summary>
    private static long MetaGroups(long groupSize) => ((KernelSource.TokensPerRun + groupSize - 2) / groupSize) + 1;

    private static IReadOnlyDictionary<string, IntPtr> Module(int device) => Modules.GetOrAdd(device, d => new Lazy<IReadOnlyDictionary<string, IntPtr>>(() =>
    {
        var names = KernelSource.RowCounts.SelectMany(r => new[] { $"vidkv_prep_{r}", $"vidkv_attend_{r}" }).Append("vidkv_merge").ToList();
        var functions = CudaRuntime.Compile(KernelSource.Text, "vidkv_fused_attention.cu", d, names);
        foreach (var r in KernelSource.RowCounts)
        {
            CudaRuntime.SetMaxDynamicSharedMemory(functions[$"vidkv_attend_{r}"], MaxSharedBytes, d);
            CudaRuntime.SetMaxDynamicSharedMemory(functions[$"vidkv_prep_{r}"], MaxSharedBytes, d);
        }

        return functions;
    })).Value;

    private static long MetaType(ScalarType? type) => type switch
    {
        null or ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        var other => throw new NotSupportedException($"Tensors of type {other} are not read by the CUDA kernels; allowed: Float32, Float16, BFloat16."),
    };

    private static Src Source(QuantizedTensor? q, int mult, int offset, bool scaled, bool zero, QuantizationAxis axis)
    {
        if (q is null)
        {
            return default;
        }

        var meta = scaled ? q.Scale : zero ? q.Zero : null;
        return new Src
        {
            Codes = CudaRuntime.DataPointer(q.Codes),
            Scale = scaled ? CudaRuntime.DataPointer(q.Scale ?? throw new InvalidOperationException("A quantized tensor lacks the scale its quantizer reads.")) : IntPtr.Zero,
            Zero = zero ? CudaRuntime.DataPointer(q.Zero ?? throw new InvalidOperationException("A quantized tensor lacks the zero point its quantizer reads.")) : IntPtr.Zero,
            Rows = q.Shape[^2],
            RowBytes = q.Codes.size(-1),
            PerByte = CodePacking.CodesPerByte(q.Format),
            Radix = CodePacking.Base(q.Format),
            Mult = mult,
            Offset = offset,
            Channels = q.Shape[^1],
            MetaType = MetaType(meta?.dtype),
            PerToken = axis == QuantizationAxis.PerToken ? 1 : 0,
        };
    }

    /// <summary>A full-precision [B, H, T, C] tensor as a raw source (no codes: RowBytes 0).</summary>
    private static Src Raw(Tensor t) => new()
    {
        Codes = CudaRuntime.DataPointer(t),
        Rows = t.size(2),
        Channels = t.size(3),
        MetaType = MetaType(t.dtype),
    };

    /// <summary>What the kernels read of one block and the sizes they stage, resolved once per block (its tensors never change).</summary>
    private sealed class BlockLaunch
    {
        public BlockLaunch(QuantizedBlock block, KVCacheOptions o)
        {
            var keys = block.Keys;
            var values = block.Values;
            bool asymmetric = o.Values == ValueQuantization.Asymmetric;
            long dOut = keys.Outliers?.Shape[^1] ?? 0;
            KeyOutliers = Source(keys.Outliers, 1, 0, scaled: true, zero: true, QuantizationAxis.PerChannel);
            KeyEasy = o.SignReconstruction == SignReconstruction.ZeroOrScale
                ? Source(keys.Easy, 1, 0, scaled: true, zero: keys.Easy?.Zero is not null, QuantizationAxis.PerChannel)
                : Source(keys.Easy, 2, -1, scaled: true, zero: keys.Easy?.Zero is not null, QuantizationAxis.PerChannel);
            ValueRest = asymmetric
                ? Source(values.Rest, 1, 0, scaled: true, zero: true, o.ValueAxis)
                : Source(values.Rest, 1, -1, scaled: o.ScaledTernary, zero: false, o.ValueAxis);
            ValueProtected = Source(values.Protected, 1, 0, scaled: true, zero: true, o.ValueAxis);
            Tokens = block.Tokens;
            Channels = dOut + (keys.Easy?.Shape[^1] ?? 0);
            ValueStride = Math.Max(values.Rest.Codes.size(-1), values.Protected?.Codes.size(-1) ?? 0);
            KeyRowBytes = (keys.Outliers?.Codes.size(-1) ?? 0) + (keys.Easy?.Codes.size(-1) ?? 0);
            Bytes = keys.CodeBytes + keys.MetadataBytes + values.CodeBytes + values.MetadataBytes;
            Prep = new Prep
            {
                OutlierIndex = keys.Outliers is null ? IntPtr.Zero : CudaRuntime.DataPointer(keys.OutlierChannels),
                EasyIndex = keys.Easy is null ? IntPtr.Zero : CudaRuntime.DataPointer(keys.EasyChannels),
                OutlierChannels = dOut,
                EasyChannels = keys.Easy is null ? 0 : keys.EasyChannels.size(0),
                Components = keys.Easy?.Shape[^1] ?? 0,
            };
        }

        public Src KeyOutliers { get; }

        public Src KeyEasy { get; }

        public Src ValueRest { get; }

        public Src ValueProtected { get; }

        public long Tokens { get; }

        /// <summary>Key channels: outliers plus 1-bit components.</summary>
        public long Channels { get; }

        /// <summary>Bytes of the longest packed value row (rest or protected), as staged per token.</summary>
        public long ValueStride { get; }

        /// <summary>Bytes of a token's packed key rows (outliers plus 1-bit components).</summary>
        public long KeyRowBytes { get; }

        /// <summary>Bytes the block holds (codes and metadata).</summary>
        public long Bytes { get; }

        public Prep Prep { get; }
    }

    /// <summary>One launch of the attend kernel: a source's tokens in runs of <c>Chunks</c> chunks, and what it stages.</summary>
    private readonly record struct Run(long Tokens, long Channels, long Chunks, long MetaGroups, long ValueStride, long KeyRowBytes)
    {
        public long Runs => (Tokens + (Chunks * KernelSource.TokensPerRun) - 1) / (Chunks * KernelSource.TokensPerRun);
    }

    /// <summary>One source as the kernels read it (layout shared with the CUDA struct <c>Src</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Src
    {
        public IntPtr Codes;
        public IntPtr Scale;
        public IntPtr Zero;
        public long Rows;
        public long RowBytes;
        public long PerByte;
        public long Radix;
        public long Mult;
        public long Offset;
        public long Channels;
        public long MetaType;
        public long PerToken;
    }

    /// <summary>The attend kernel's parameters (layout shared with the CUDA struct <c>Params</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public IntPtr Rows;
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
        public long Run0;
        public long Runs;
        public long Chunks;
        public long MetaGroups;
        public long ValueStride;
    }

    /// <summary>The prep kernel's parameters (layout shared with the CUDA struct <c>Prep</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Prep
    {
        public IntPtr Query;
        public IntPtr Rows;
        public IntPtr OutlierIndex;
        public IntPtr EasyIndex;
        public IntPtr Weights;
        public long QueryRows;
        public long Dim;
        public long OutlierChannels;
        public long EasyChannels;
        public long Components;
        public long Channels;
        public long QueryType;
        public float Scale;
    }

    /// <summary>The merge kernel's parameters (layout shared with the CUDA struct <c>Merge</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Merge
    {
        public IntPtr M;
        public IntPtr L;
        public IntPtr Acc;
        public IntPtr Output;
        public long BatchHeads;
        public long Runs;
        public long QueryRows;
        public long ValueChannels;
    }
}
