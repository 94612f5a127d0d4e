using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// The single-launch tensor-core path of <see cref="CudaFusedAttention"/> (<see cref="MmaKernelSource"/>): for caches whose
/// blocks it fits (b-bit key codes per channel with channel counts that are multiples of 16, unscaled per-channel
/// ternary values packed in base 3 (the Compact profile; the Reference profile's 2-bit packing and stored-but-unread value
/// metadata go to the general kernels), groups of a multiple of 32 tokens, at most 128 value channels) and at most 8
/// query rows per KV head.
/// Per cache it keeps a <see cref="Plan"/> (the blocks' descriptions, the splits, the run states and the merge
/// counters on the device), made again only when the cache's block list changes; a call then allocates the output,
/// fills one parameter struct and launches one kernel.
/// </summary>
internal static class MmaAttention
{
    private static readonly ConcurrentDictionary<(int Device, string Name, bool Timeline), Lazy<IntPtr>> Kernels = new();
    private static readonly ConcurrentDictionary<(OneBitKeyMode Mode, long Channels, int Device), Tensor> Transforms = new();
    private static readonly Lock PlanLock = new();
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<QuantizedBlock, object> BlockFit = new();
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<QuantizedBlock, object> Shapes = new();

    /// <summary>
    /// Diagnostics only (<c>vidkv-bench timeline</c>): while set (an int64 CUDA tensor of at least
    /// <see cref="TimelineSlots"/> per thread block of a launch, zeroed by the caller), launches run the kernel compiled with
    /// <c>VIDKV_TIMELINE</c>, which writes when each block reaches each part of its work into it (see the kernel's TL). Not
    /// thread-safe; null (the default) runs the kernel as measured.
    /// </summary>
    internal static Tensor? Timeline { get; set; }

    /// <summary>Slots of <see cref="Timeline"/> per thread block: global timer and SM clock of each of the kernel's 10
    /// events (entry, copy table, query gathered, transform, main loop, state stored, group counter, group merged, head
    /// counter, exit; 0 where the block did not reach it), then its block index (x | y &lt;&lt; 20 | z &lt;&lt; 40) and SM.</summary>
    internal const int TimelineSlots = 22;

    /// <summary>Whether this cache and query fit the kernel (else the general kernels run).</summary>
    public static bool Fits(QuantizedKVCache cache, Tensor query) => Fits(cache, query.size(0), query.size(1), query.size(2), query.dtype);

    /// <summary>Whether this cache fits the kernel for queries of <paramref name="batch"/> items, Hq heads and Tq tokens.</summary>
    public static bool Fits(QuantizedKVCache cache, long batch, long queryHeads, long queryTokens, ScalarType queryType)
    {
        if (cache.Blocks.Count == 0 || queryType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            return false;
        }

        var first = cache.Blocks[0];
        long hkv = first.Keys.Shape[1], dv = first.Values.Shape[3];
        long nq = queryHeads / hkv * queryTokens;
        if (nq > MmaKernelSource.Rows || batch * hkv > 65535 || dv % 16 != 0 || dv > MmaKernelSource.MaxValueChannels)
        {
            return false;
        }

        if (cache.ResidualLength > 0 && cache.ResidualKeys!.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            return false;
        }

        var o = cache.Options;
        return o.GroupSize % MmaKernelSource.UnitTokens == 0 && o.ValueAxis == QuantizationAxis.PerChannel
            && o.Values == ValueQuantization.Ternary && !o.ScaledTernary && AllBlocksFit(cache.Blocks, dv);
    }

    /// <summary>
    /// Whether every block fits, with one key metadata type (the kernel is instantiated per type), each block checked once
    /// (its tensors never change).
    /// </summary>
    private static bool AllBlocksFit(IReadOnlyList<QuantizedBlock> blocks, long dv)
    {
        long type = (long)BlockFit.GetValue(blocks[0], b => BlockFits(b, dv));
        for (int i = 1; i < blocks.Count && type >= 0; i++)
        {
            if ((long)BlockFit.GetValue(blocks[i], b => BlockFits(b, dv)) != type)
            {
                return false;
            }
        }

        return type >= 0;
    }

    /// <summary>The block's key metadata type (see <see cref="MetaType"/>) where it fits the kernel, else -1.</summary>
    private static long BlockFits(QuantizedBlock block, long dv)
    {
        var k = block.Keys;
        var v = block.Values;
        bool outliersFit = k.Outliers is null || (k.Outliers.Format is CodeFormat.Bits2 or CodeFormat.Bits4 or CodeFormat.Bits8 && k.Outliers.Shape[^1] % 16 == 0);
        bool easyFit = k.Easy is null || (k.Easy.Format == CodeFormat.Bits1 && k.Easy.Shape[^1] % 16 == 0);
        static bool Aligned(Tensor? t) => t is null || (t.is_contiguous() && CudaRuntime.DataPointer(t) % 16 == 0);
        bool aligned = Aligned(k.Outliers?.Codes) && Aligned(k.Outliers?.Scale) && Aligned(k.Outliers?.Zero) && Aligned(k.Easy?.Codes)
            && Aligned(k.Easy?.Scale) && Aligned(k.Easy?.Zero) && Aligned(v.Rest.Codes);
        // One metadata type for every scale and zero point (the kernel reads them as one type).
        var types = new[] { k.Outliers?.Scale, k.Outliers?.Zero, k.Easy?.Scale, k.Easy?.Zero }.Where(t => t is not null).Select(t => t!.dtype).Distinct().ToList();
        bool fits = (k.Outliers is not null || k.Easy is not null) && outliersFit && easyFit && v.Protected is null && v.Rest.Scale is null
            && v.Rest.Format == CodeFormat.Trits && v.Shape[3] == dv && aligned
            && types.Count == 1 && types[0] is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;
        return fits ? MetaType(types[0]) : -1;
    }

    /// <summary>
    /// Whether the kernel instantiation for this cache (<see cref="Fits(QuantizedKVCache, Tensor)"/> must hold) compiles for
    /// the device (once per device and instantiation; a failure is remembered).
    /// </summary>
    public static bool Compiles(int device, QuantizedKVCache cache)
    {
        try
        {
            _ = Kernel(device, ShapeOf(cache).Kernel);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Attends with the single-launch kernel; <see cref="Fits(QuantizedKVCache, Tensor)"/> and <see cref="Compiles"/> must hold.</summary>
    /// <param name="cache">The cache.</param>
    /// <param name="query">Queries [B, Hq, Tq, D] on the cache's device.</param>
    /// <param name="causal">Mask future positions.</param>
    /// <param name="scale">Softmax scale.</param>
    /// <param name="temporaryBytes">Bytes of device tensors this path holds for the call: output, any query copy, and the cache's workspace.</param>
    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale, out long temporaryBytes)
    {
        using var scope = NewDisposeScope();
        var q = query.is_contiguous() ? query : query.contiguous();
        var plan = PlanOf(cache, Math.Max(0, query.device_index), 1);
        var output = empty(new[] { query.size(0), query.size(1), query.size(2), plan.ValueChannels }, ScalarType.Float32, query.device);
        temporaryBytes = (output.NumberOfElements * 4) + (ReferenceEquals(q, query) ? 0 : q.NumberOfElements * q.ElementSize) + plan.Bytes;
        Launch([cache], [0], q, output, causal, scale, 1);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// What one launch holds in common for its caches (kernel instantiation, batch and head geometry, channel counts,
    /// residual type, staging layout): caches that fit the kernel (<see cref="Fits(QuantizedKVCache, long, long, long, ScalarType)"/>)
    /// with equal keys can share a launch. The cache must hold a quantized block.
    /// </summary>
    public static (LaunchShape Shape, ScalarType? ResidualType) BatchKey(QuantizedKVCache cache)
        => (ShapeOf(cache), cache.ResidualKeys?.dtype);

    /// <summary>The launch shape of a cache's first block (made once per block).</summary>
    private static LaunchShape ShapeOf(QuantizedKVCache cache)
        => (LaunchShape)Shapes.GetValue(cache.Blocks[0], b => new LaunchShape(b, cache.Options));

    /// <summary>
    /// The kernel instantiation for a block's outlier bits and key metadata type, specialized for its geometry (channel
    /// counts and packed row bytes, which every block of a cache shares: the staging layout is made from the first).
    /// </summary>
    internal static string KernelName(QuantizedBlock block, KVCacheOptions options)
    {
        var keys = block.Keys;
        int metadata = (int)MetaType((keys.Outliers ?? keys.Easy)!.Scale?.dtype);
        return MmaKernelSource.Name(
            keys.Outliers?.Format switch { CodeFormat.Bits4 => 4, CodeFormat.Bits8 => 8, _ => 2 },
            metadata,
            new MmaKernelSource.Geometry(
                (int)(keys.Outliers?.Shape[^1] ?? 0),
                (int)(keys.Easy?.Shape[^1] ?? 0),
                (int)(keys.Outliers?.Codes.size(-1) ?? 0),
                (int)(keys.Easy?.Codes.size(-1) ?? 0),
                (int)block.Values.Rest.Codes.size(-1),
                (int)block.Values.Shape[3]),
            scaledBits: ScaledBits(block, options, metadata));
    }

    /// <summary>
    /// Whether the block's 1-bit keys can take their scale on the tensor cores' A side (exact: bit ? scale : 0): float16
    /// metadata, codes reconstructed as 0 or the scale with no zero point, at most as many components as the keys have
    /// channels (their B fragments take the scaled query's place in shared memory), and 2-bit outliers or none (see
    /// <see cref="MmaKernelSource.Name(int, int, bool)"/>).
    /// </summary>
    private static bool ScaledBits(QuantizedBlock block, KVCacheOptions options, int metadata)
        => block.Keys.Easy is { Zero: null } easy && metadata == 1 && options.SignReconstruction == SignReconstruction.ZeroOrScale
            && easy.Shape[^1] <= block.Keys.Shape[3] && block.Keys.Outliers?.Format is null or CodeFormat.Bits2;

    /// <summary>
    /// Whether <see cref="CudaFusedAttention.KernelVariable"/> asks for the tensor-core kernel that reads the cache's
    /// geometry at run time (<c>mma-generic</c>) instead of the instantiation specialized for it: the same arithmetic, bit
    /// for bit, to compare the two in one run.
    /// </summary>
    internal static bool Generic => Environment.GetEnvironmentVariable(CudaFusedAttention.KernelVariable) == "mma-generic";

    /// <summary>
    /// One launch (per <see cref="MmaKernelSource.MaxSequences"/> sequences) over several caches: sequence i reads rows
    /// <paramref name="rows"/>[i] of <paramref name="query"/> [rows, Hq, Tq, D] (contiguous) and writes the same row of
    /// <paramref name="output"/> [rows, Hq, Tq, Dv] (float32, contiguous). The caches must be distinct, each fit the
    /// kernel, compile on the device and share one <see cref="BatchKey"/>; nothing is allocated but a plan on a cache's
    /// first call after its block list changed (or at a new batch size class: each cache's splits are planned for its share of
    /// the GPU, so that N sequences together fill it with longer splits rather than N times the blocks). <c>share</c>: the
    /// sequences the GPU is shared by when planning each cache's splits; 1 splits a cache as a call for it alone does (the
    /// same arithmetic, bit for bit).
    /// </summary>
    public static void Launch(IReadOnlyList<QuantizedKVCache> caches, IReadOnlyList<int> rows, Tensor query, Tensor output, bool causal, double scale, int share)
    {
        int device = Math.Max(0, query.device_index);
        long hq = query.size(1), tq = query.size(2), d = query.size(3);
        var first = PlanOf(caches[0], device, share);
        long nq = hq / first.KvHeads * tq;
        var p = new Params
        {
            Output = CudaRuntime.DataPointer(output),
            Query = CudaRuntime.DataPointer(query),
            QueryType = MetaType(query.dtype),
            QueryRows = nq,
            QueryTokens = tq,
            Causal = causal ? 1 : 0,
            Dim = d,
            ValueChannels = first.ValueChannels,
            Channels = first.Channels,
            Stage = first.Stage.Bytes,
            OffsetOutlierCodes = first.Stage.OutlierCodes,
            OffsetEasyCodes = first.Stage.EasyCodes,
            OffsetValueCodes = first.Stage.ValueCodes,
            OffsetOutlierScale = first.Stage.OutlierScale,
            OffsetOutlierZero = first.Stage.OutlierZero,
            OffsetEasyScale = first.Stage.EasyScale,
            OffsetEasyZero = first.Stage.EasyZero,
            Scale = (float)(scale / Math.Log(2)),
            Timeline = Timeline is { } timeline ? CudaRuntime.DataPointer(timeline) : IntPtr.Zero,
        };

        for (int start = 0; start < caches.Count; start += MmaKernelSource.MaxSequences)
        {
            int count = Math.Min(MmaKernelSource.MaxSequences, caches.Count - start);
            long maxSplits = 0, easyChannels = 0;
            p.ResidualType = 0;
            for (int i = 0; i < count; i++)
            {
                var cache = caches[start + i];
                var plan = PlanOf(cache, device, share);
                long rLen = cache.ResidualLength;
                var storage = cache.ResidualStorage; // the residual, or the buffers it is a view of (heads ResidualStride tokens apart)
                long splits = plan.QuantSplits + ((rLen + MmaKernelSource.UnitTokens - 1) / MmaKernelSource.UnitTokens);
                plan.EnsureStates(splits);
                maxSplits = Math.Max(maxSplits, splits);
                easyChannels = Math.Max(easyChannels, plan.EasyChannels);
                if (rLen > 0)
                {
                    p.ResidualType = MetaType(cache.ResidualKeys!.dtype);
                }

                p.Sequences[i] = new Sequence
                {
                    Blocks = plan.BlocksPointer,
                    Splits = plan.SplitsPointer,
                    Counters = plan.CountersPointer,
                    States = plan.StatesPointer,
                    ResidualKeys = rLen > 0 ? CudaRuntime.DataPointer(storage.Keys!) : IntPtr.Zero,
                    ResidualValues = rLen > 0 ? CudaRuntime.DataPointer(storage.Values!) : IntPtr.Zero,
                    QuantSplits = plan.QuantSplits,
                    ResidualStart = cache.QuantizedLength,
                    ResidualLength = rLen,
                    Row = rows[start + i],
                    ResidualStride = (int)cache.ResidualStride,
                };
            }

            p.SequenceCount = count;
            // The staging area: a double buffer per warp and the block's table of 16-byte copies (at most one buffer's bytes), or
            // the merge's weights and the gathered 1-bit query channels where those need more.
            long shared = SharedBytes(first.Channels, d, Math.Max(first.Stage.Bytes * ((2L * (MmaKernelSource.Threads / 32)) + 1), 4L * MmaKernelSource.Rows * Math.Max(easyChannels, maxSplits)));
            CudaRuntime.Launch(Kernel(device, Generic ? MmaKernelSource.GenericName(first.KernelName) : first.KernelName, p.Timeline != IntPtr.Zero), device, ((uint)maxSplits, (uint)(first.Batch * first.KvHeads), (uint)count), MmaKernelSource.Threads, (uint)shared, ref p);
        }
    }

    /// <summary>Bytes of the kernel's parameter struct (at most 4 KiB, CUDA's limit), and the offset of its sequences.</summary>
    internal static unsafe (int Bytes, int SequencesOffset) ParamsLayout
        => (sizeof(Params), (int)Marshal.OffsetOf<Params>(nameof(Params.Sequences)));

    /// <summary>Dynamic shared memory of the kernel, as it lays it out.</summary>
    private static long SharedBytes(long channels, long dim, long stageBytes)
    {
        static long Align4(long f) => (f + 3) & ~3L;
        const long rows = MmaKernelSource.Rows, warps = MmaKernelSource.Threads / 32;
        long floats = Align4(Math.Max(rows * (channels + 8), rows * 32)) + Align4(rows * dim);
        return (4 * floats) + MmaKernelSource.WorkAreaBytes + (2 * warps * rows * 4) + stageBytes;
    }

    /// <summary>The compiled kernel <paramref name="name"/> (from <see cref="MmaKernelSource.Name(int, int, MmaKernelSource.Geometry, bool)"/> or <see cref="MmaKernelSource.Name(int, int, bool)"/>) on the device: each instantiation compiles on first use.</summary>
    private static IntPtr Kernel(int device, string name, bool timeline = false) => Kernels.GetOrAdd((device, name, timeline), key => new Lazy<IntPtr>(() =>
    {
        var source = (key.Timeline ? "#define VIDKV_TIMELINE\n" : string.Empty) + MmaKernelSource.Source([key.Name]);
        var function = CudaRuntime.Compile(source, "vidkv_mma_attention.cu", key.Device, [key.Name])[key.Name];
        CudaRuntime.SetMaxDynamicSharedMemory(function, 200 * 1024, key.Device);
        return function;
    })).Value;

    /// <summary>
    /// The cache's plan for launches of <paramref name="sequences"/> sequences, rounded down to a power of two (at most
    /// <see cref="MmaKernelSource.MaxSequences"/>): its splits give the cache 1/that of the GPU. A cache keeps the plans
    /// of its two most recent sizes (one-sequence calls and a batch, say), made again when its block list changes.
    /// </summary>
    private static Plan PlanOf(QuantizedKVCache cache, int device, int sequences)
    {
        int share = (int)Math.Min(MmaKernelSource.MaxSequences, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, sequences) + 1) / 2);
        lock (PlanLock)
        {
            if (cache.CudaWorkspace is not Workspace workspace)
            {
                cache.CudaWorkspace?.Dispose();
                cache.CudaWorkspace = workspace = new Workspace();
            }

            return workspace.Get(cache, device, share);
        }
    }

    private static long MetaType(ScalarType? type) => type switch
    {
        null or ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        var other => throw new NotSupportedException($"Tensors of type {other} are not read by the CUDA kernels; allowed: Float32, Float16, BFloat16."),
    };

    private static Tensor Transform(OneBitKeyMode mode, long channels, int device) => Transforms.GetOrAdd((mode, channels, device), key =>
    {
        using var cpu = CudaFusedAttention.TransformMatrix(key.Mode, key.Channels);
        return cpu.to(new Device(DeviceType.CUDA, key.Device)).DetachFromDisposeScope();
    });

    private static long Floats(float a, float b) => (uint)BitConverter.SingleToInt32Bits(a) | ((long)BitConverter.SingleToInt32Bits(b) << 32);

    /// <summary>
    /// The device buffers a cache keeps for the kernel (<see cref="QuantizedKVCache.CudaWorkspace"/>): its plans for the two
    /// launch sizes it was used at most recently, dropped when its block list changes.
    /// </summary>
    internal sealed class Workspace : IDisposable
    {
        private readonly List<Plan> _plans = new(2);

        /// <summary>Bytes of the device tensors the plans hold.</summary>
        public long Bytes => _plans.Sum(p => p.Bytes);

        public Plan Get(QuantizedKVCache cache, int device, int share)
        {
            for (int i = _plans.Count - 1; i >= 0; i--)
            {
                if (!_plans[i].Matches(cache, device))
                {
                    _plans[i].Dispose();
                    _plans.RemoveAt(i);
                }
            }

            var plan = _plans.Find(p => p.Share == share);
            if (plan is null)
            {
                if (_plans.Count == 2)
                {
                    _plans[0].Dispose();
                    _plans.RemoveAt(0);
                }

                plan = new Plan(cache, device, share);
            }
            else
            {
                _plans.Remove(plan);
            }

            _plans.Add(plan); // most recent last
            return plan;
        }

        public void Dispose()
        {
            _plans.ForEach(p => p.Dispose());
            _plans.Clear();
        }
    }

    /// <summary>
    /// What the kernel reads of a cache besides its tensors, on the device: the blocks' descriptions and the splits
    /// (made once per block list), the merge counters and the run states (grown when the residual needs more splits).
    /// </summary>
    internal sealed class Plan : IDisposable
    {
        private readonly QuantizedBlock[] _blocks;
        private readonly int _device;
        private readonly Tensor _tables;
        private Tensor _counters = null!;
        private Tensor _states;
        private long _stateSplits;

        public Plan(QuantizedKVCache cache, int device, int share)
        {
            Share = share;
            _device = device;
            _blocks = cache.Blocks.ToArray();
            var o = cache.Options;
            var first = _blocks[0];
            long batch = first.Keys.Shape[0];
            Batch = batch;
            KvHeads = first.Keys.Shape[1];
            ValueChannels = first.Values.Shape[3];
            Channels = (first.Keys.Outliers?.Shape[^1] ?? 0) + (first.Keys.Easy?.Shape[^1] ?? 0);
            long bh = batch * KvHeads;

            // Splits of whole 32-token units inside one block: enough of them to give every multiprocessor four blocks,
            // with the GPU shared by the launch's sequences.
            int sms = CudaRuntime.MultiprocessorCount(device);
            long target = Math.Max(1, 4L * sms / (bh * share));
            long units = _blocks.Sum(x => x.Tokens / MmaKernelSource.UnitTokens);
            // At least 8 units (2 per warp) a split, which amortize a split's prologue (the query's gather and transform)
            // and give the last split fewer states to merge; 4 (one per warp) where 8 would leave multiprocessors idle
            // (short caches: there a split's critical path is its prologue and one unit a warp).
            long minUnits = units * bh * share / 8 >= sms ? 8 : 4;
            long perSplit = Math.Max(minUnits, (units + target - 1) / target);
            var splits = new List<long>();
            for (int i = 0; i < _blocks.Length; i++)
            {
                long blockUnits = _blocks[i].Tokens / MmaKernelSource.UnitTokens;
                for (long u = 0; u < blockUnits; u += perSplit)
                {
                    splits.AddRange([i, u, Math.Min(perSplit, blockUnits - u)]);
                }
            }

            QuantSplits = splits.Count / 3;
            EasyChannels = first.Keys.Easy is null ? 0 : first.Keys.EasyChannels.size(0);
            KernelName = MmaAttention.KernelName(first, o);
            Stage = new StageLayout(first);
            var words = new List<long>();
            foreach (var block in _blocks)
            {
                Describe(block, o, words);
            }

            long descriptionWords = words.Count;
            words.AddRange(splits);
            _tables = tensor(words.ToArray(), ScalarType.Int64).to(new Device(DeviceType.CUDA, device)).DetachFromDisposeScope();
            BlocksPointer = CudaRuntime.DataPointer(_tables);
            SplitsPointer = BlocksPointer + (nint)(8 * descriptionWords);
            _states = AllocateStates(QuantSplits + (o.ResidualLength / MmaKernelSource.UnitTokens) + 1, out _stateSplits);
        }

        /// <summary>Batch items of the cache.</summary>
        public long Batch { get; }

        /// <summary>Sequences of the launches this plan's splits are made for (a power of two).</summary>
        public int Share { get; }

        public long KvHeads { get; }

        /// <summary>1-bit (easy) key channels before the transform.</summary>
        public long EasyChannels { get; }

        /// <summary>The kernel instantiation for the blocks' outlier bits and value packing.</summary>
        public string KernelName { get; }

        public StageLayout Stage { get; }

        public long ValueChannels { get; }

        public long Channels { get; }

        public long QuantSplits { get; }

        public IntPtr BlocksPointer { get; }

        public IntPtr SplitsPointer { get; }

        public IntPtr CountersPointer { get; private set; }

        public IntPtr StatesPointer { get; private set; }

        /// <summary>Bytes of the device tensors the plan holds.</summary>
        public long Bytes => (_tables.NumberOfElements * 8) + (_counters.NumberOfElements * 4) + (_states.NumberOfElements * 4);

        public bool Matches(QuantizedKVCache cache, int device)
        {
            if (device != _device || cache.Blocks.Count != _blocks.Length)
            {
                return false;
            }

            for (int i = 0; i < _blocks.Length; i++)
            {
                if (!ReferenceEquals(cache.Blocks[i], _blocks[i]))
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary>Makes room for the run states of <paramref name="splits"/> splits per KV head.</summary>
        public void EnsureStates(long splits)
        {
            if (splits > _stateSplits)
            {
                _states.Dispose();
                _counters.Dispose();
                _states = AllocateStates(splits, out _stateSplits);
            }
        }

        public void Dispose()
        {
            _tables.Dispose();
            _counters.Dispose();
            _states.Dispose();
        }

        private Tensor AllocateStates(long splits, out long capacity)
        {
            capacity = splits;
            long bh = Batch * KvHeads;

            // Merge counters: one per KV head, then one per group of 16 splits of each (zero between calls).
            _counters = zeros(new[] { bh * (1 + ((splits + 15) / 16)) }, ScalarType.Int32, new Device(DeviceType.CUDA, _device)).DetachFromDisposeScope();
            CountersPointer = CudaRuntime.DataPointer(_counters);
            var states = empty(new[] { bh * splits * MmaKernelSource.Rows * (2 + ValueChannels) }, ScalarType.Float32, new Device(DeviceType.CUDA, _device)).DetachFromDisposeScope();
            StatesPointer = CudaRuntime.DataPointer(states);
            return states;
        }

        private void Describe(QuantizedBlock block, KVCacheOptions o, List<long> words)
        {
            var keys = block.Keys;
            var values = block.Values;
            float easyMult = o.SignReconstruction == SignReconstruction.ZeroOrScale ? 1 : 2;
            float easyOffset = o.SignReconstruction == SignReconstruction.ZeroOrScale ? 0 : -1;
            KeySource(keys.Outliers, 1, 0, words);  // asymmetric codes: the tensor-core kernel takes (1, 0) as given
            KeySource(keys.Easy, easyMult, easyOffset, words);
            var rest = values.Rest;
            long easyChannels = keys.Easy is null ? 0 : keys.EasyChannels.size(0);
            var transform = keys.Easy is null || o.OneBitKeys == OneBitKeyMode.TimeDomain ? null : Transform(o.OneBitKeys, easyChannels, _device);
            words.Add(CudaRuntime.DataPointer(rest.Codes));
            words.Add(keys.Outliers is null ? 0 : CudaRuntime.DataPointer(keys.OutlierChannels));
            words.Add(keys.Easy is null ? 0 : CudaRuntime.DataPointer(keys.EasyChannels));
            words.Add(transform is null ? 0 : CudaRuntime.DataPointer(transform));
            words.Add(rest.Codes.size(-1));
            words.Add(keys.Outliers?.Shape[^1] ?? 0);
            words.Add(easyChannels);
            words.Add(keys.Easy?.Shape[^1] ?? 0);
            words.Add(block.Start);
            words.Add(block.Tokens);
            words.Add(o.GroupSize);
            words.Add(Floats(1, -1));
        }

        private static void KeySource(QuantizedTensor? q, float mult, float offset, List<long> words)
        {
            if (q is null)
            {
                words.AddRange([0, 0, 0, 0, 0, 0, 0]);
                return;
            }

            words.Add(CudaRuntime.DataPointer(q.Codes));
            words.Add(CudaRuntime.DataPointer(q.Scale ?? throw new InvalidOperationException("A quantized key tensor lacks its scale.")));
            words.Add(q.Zero is null ? 0 : CudaRuntime.DataPointer(q.Zero));
            words.Add(q.Codes.size(-1));
            words.Add(q.Format switch { CodeFormat.Bits1 => 1, CodeFormat.Bits2 => 2, CodeFormat.Bits4 => 4, _ => 8 });
            words.Add(q.Shape[^1]);
            words.Add(Floats(mult, offset));
        }
    }

    /// <summary>What a launch holds in common for its caches, from a cache's first block (made once per block).</summary>
    internal sealed record LaunchShape
    {
        public LaunchShape(QuantizedBlock first, KVCacheOptions options)
        {
            var keys = first.Keys;
            Kernel = KernelName(first, options);
            Batch = keys.Shape[0];
            KvHeads = keys.Shape[1];
            ValueChannels = first.Values.Shape[3];
            Channels = (keys.Outliers?.Shape[^1] ?? 0) + (keys.Easy?.Shape[^1] ?? 0);
            Stage = new StageLayout(first);
        }

        public string Kernel { get; }

        public long Batch { get; }

        public long KvHeads { get; }

        public long ValueChannels { get; }

        public long Channels { get; }

        public StageLayout Stage { get; }
    }

    /// <summary>A warp's staging buffer for one 32-token unit: byte offsets (16-byte aligned) of what it holds.</summary>
    internal sealed record StageLayout
    {
        public StageLayout(QuantizedBlock block)
        {
            static int Align16(long x) => (int)((x + 15) & ~15L);
            var k = block.Keys;
            int meta = k.Outliers?.Scale?.dtype == ScalarType.Float32 || k.Easy?.Scale?.dtype == ScalarType.Float32 ? 4 : 2;
            long chO = k.Outliers?.Shape[^1] ?? 0, chE = k.Easy?.Shape[^1] ?? 0;
            long rbV = block.Values.Rest.Codes.size(-1);
            OutlierCodes = 0;
            EasyCodes = Align16(32 * (k.Outliers?.Codes.size(-1) ?? 0));
            ValueCodes = EasyCodes + Align16(32 * (k.Easy?.Codes.size(-1) ?? 0));
            OutlierScale = ValueCodes + Align16(32 * rbV);
            OutlierZero = OutlierScale + Align16(chO * meta);
            EasyScale = OutlierZero + Align16(chO * meta);
            EasyZero = EasyScale + Align16(chE * meta);
            Bytes = EasyZero + Align16(chE * meta);
        }

        public int OutlierCodes { get; }

        public int EasyCodes { get; }

        public int ValueCodes { get; }

        public int OutlierScale { get; }

        public int OutlierZero { get; }

        public int EasyScale { get; }

        public int EasyZero { get; }

        public int Bytes { get; }
    }

    /// <summary>One sequence of a launch (layout shared with the CUDA struct <c>Seq</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Sequence
    {
        public IntPtr Blocks;
        public IntPtr Splits;
        public IntPtr Counters;
        public IntPtr States;
        public IntPtr ResidualKeys;
        public IntPtr ResidualValues;
        public long QuantSplits;
        public long ResidualStart;
        public long ResidualLength;
        public int Row;
        public int ResidualStride;
    }

    /// <summary>The launch's sequences, inline in the parameters.</summary>
    [System.Runtime.CompilerServices.InlineArray(MmaKernelSource.MaxSequences)]
    private struct Sequences
    {
        private Sequence _first;
    }

    /// <summary>The kernel's parameters (layout shared with the CUDA struct <c>Params</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public IntPtr Output;
        public IntPtr Query;
        public long QueryType;
        public long ResidualType;
        public long QueryRows;
        public long QueryTokens;
        public long Causal;
        public long Dim;
        public long ValueChannels;
        public long Channels;
        public long SequenceCount;
        public int Stage;
        public int OffsetOutlierCodes;
        public int OffsetEasyCodes;
        public int OffsetValueCodes;
        public int OffsetOutlierScale;
        public int OffsetOutlierZero;
        public int OffsetEasyScale;
        public int OffsetEasyZero;
        public float Scale;
        public int Padding2;
        public IntPtr Timeline;
        public Sequences Sequences;
    }
}
