using TorchSharp;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Decode attention computed from a <see cref="QuantizedKVCache"/>'s packed codes, without rebuilding a
/// full-precision copy of the quantized part: the same result as <see cref="QuantizedKVCache.Attend"/>
/// (dequantize, then attend) up to float32 rounding, with extra memory that does not grow with the cache.
/// </summary>
/// <remarks>
/// <para>On the CPU: C# kernels (AVX-512, AVX2 or portable, see <see cref="FusedKernelPath"/>), parallel over
/// (batch item, KV head). On CUDA: kernels compiled at run time by NVRTC that read the packed codes in place
/// (<see cref="FusedKernelPath.Cuda"/>): one tensor-core launch split over the whole GPU for the Compact ternary presets at
/// decode, the general per-block kernels otherwise. Elsewhere, or when asked: chunked TorchSharp operations
/// over runs of <see cref="ChunkedFusedAttention.DefaultChunkTokens"/> tokens.</para>
/// <para>Thread safety: calls that read the same cache may run concurrently; the cache must not change during a call.</para>
/// </remarks>
public static class FusedAttention
{
    /// <summary>Whether <paramref name="path"/> runs here: a CPU path this processor accelerates (<see cref="FusedKernelPath.Auto"/>,
    /// <see cref="FusedKernelPath.Portable"/> and <see cref="FusedKernelPath.Chunked"/> always run), or
    /// <see cref="FusedKernelPath.Cuda"/> when the CUDA driver and NVRTC are found.</summary>
    public static bool IsSupported(FusedKernelPath path) => path switch
    {
        FusedKernelPath.Chunked => true,
        FusedKernelPath.Cuda => CudaFusedAttention.IsAvailable,
        _ => SimdKernels.IsSupported(path),
    };

    /// <summary>
    /// Bytes of the device tensors the last <see cref="FusedKernelPath.Cuda"/> call on this thread allocated (run states,
    /// transformed query rows, protection maps, any copy of the query or residual, and the output): its extra memory,
    /// counted from the tensors, since the cache is read in place. For benchmarks; 0 before the first such call.
    /// </summary>
    public static long LastCudaTemporaryBytes => CudaFusedAttention.LastTemporaryBytes;

    /// <summary>
    /// Which CUDA kernels the last <see cref="FusedKernelPath.Cuda"/> call on this thread ran: the single-launch
    /// tensor-core kernel (ternary per-channel values without a scale, b-bit keys with channel counts that are multiples
    /// of 16, groups of a multiple of 32 tokens, at most 8 query rows per KV head) or the general kernels. For benchmarks.
    /// </summary>
    public static string LastCudaKernel => CudaFusedAttention.LastKernel;

    /// <summary>
    /// Environment variable read by each <see cref="FusedKernelPath.Cuda"/> call: <c>general</c> runs the general kernels even
    /// where the single-launch tensor-core kernel fits (to compare the two in one process).
    /// </summary>
    public const string CudaKernelVariable = CudaFusedAttention.KernelVariable;

    /// <summary>Why <see cref="FusedKernelPath.Cuda"/> cannot run here, or which NVRTC it runs with.</summary>
    public static string CudaDescription => CudaFusedAttention.Description;

    /// <summary>The concrete CPU path <see cref="FusedKernelPath.Auto"/> picks on this processor.</summary>
    public static FusedKernelPath AutoPath => SimdKernels.Resolve(FusedKernelPath.Auto);

    /// <summary>
    /// Attends queries [B, Hq, Tq, D] over everything <paramref name="cache"/> holds (quantized blocks and residual),
    /// with grouped-query attention (Hq a multiple of the cache's KV heads). With <paramref name="causal"/> the
    /// queries are the last Tq cached positions and each sees positions up to its own.
    /// </summary>
    /// <param name="cache">The layer's cache; it must hold at least one token.</param>
    /// <param name="query">Queries on the cache's device, any floating type.</param>
    /// <param name="causal">Mask future positions for multi-token queries.</param>
    /// <param name="scale">Softmax scale; default 1/sqrt(D).</param>
    /// <param name="path">Kernels to use; a CPU path given for CUDA tensors means <see cref="FusedKernelPath.Auto"/>.</param>
    /// <returns>float32 [B, Hq, Tq, Dv], owned by the caller.</returns>
    /// <exception cref="ArgumentException">The query's rank, type, shape or device does not fit the cache.</exception>
    /// <exception cref="InvalidOperationException">The cache is empty.</exception>
    /// <exception cref="NotSupportedException"><paramref name="path"/> is not accelerated on this processor.</exception>
    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal = false, double? scale = null, FusedKernelPath path = FusedKernelPath.Auto)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(query);
        var device = Check(cache, query, causal);
        double s = scale ?? (1.0 / Math.Sqrt(query.size(3)));
        if (path == FusedKernelPath.Chunked)
        {
            return ChunkedFusedAttention.Attend(cache, query, causal, s, ChunkedFusedAttention.DefaultChunkTokens);
        }

        if (device == DeviceType.CPU)
        {
            return path == FusedKernelPath.Cuda
                ? throw new ArgumentException("The Cuda kernel path needs the cache and query on a CUDA device; they are on the CPU.", nameof(path))
                : CpuFusedAttention.Attend(cache, query, causal, s, path);
        }

        if (device == DeviceType.CUDA && path == FusedKernelPath.Cuda)
        {
            if (!CudaFusedAttention.IsAvailable)
            {
                throw new NotSupportedException($"The Cuda kernel path cannot run here: {CudaFusedAttention.Description}");
            }

            return CudaFusedAttention.Fits(cache, query)
                ? CudaFusedAttention.Attend(cache, query, causal, s)
                : throw new NotSupportedException($"The Cuda kernel path handles at most {CudaFusedAttention.MaxQueryRows} query heads per KV head (and the value channels, query type and shared memory of its launches); use Auto or Chunked.");
        }

        if (CudaKernelsApply(cache, query))
        {
            return CudaFusedAttention.Attend(cache, query, causal, s);
        }

        return ChunkedFusedAttention.Attend(cache, query, causal, s, ChunkedFusedAttention.DefaultChunkTokens);
    }

    /// <summary>
    /// One batched decode step over several sequences: sequence i attends with row i of <paramref name="queries"/>
    /// [N, Hq, Tq, D] over everything <paramref name="caches"/>[i] holds, as <see cref="Attend"/> would for that row alone
    /// (the caches may hold different numbers of tokens, blocks and residual tokens, and may share blocks forked from one
    /// snapshot). On CUDA the caches that fit the single-launch tensor-core kernel are served by one launch per layer (per
    /// 64 sequences and per kind of cache) instead of one per sequence; on the CPU the sequences' (KV head) work items run
    /// in one parallel loop. Other caches run one <see cref="Attend"/> call each; see <paramref name="matchSingleCalls"/>.
    /// </summary>
    /// <param name="caches">N distinct, non-empty caches of one batch item each, with one head geometry, on the queries' device.</param>
    /// <param name="queries">Queries [N, Hq, Tq, D], any floating type: row i for cache i.</param>
    /// <param name="causal">Mask future positions for multi-token queries (each row's tokens are its cache's last).</param>
    /// <param name="scale">Softmax scale; default 1/sqrt(D).</param>
    /// <param name="path">Kernels to use, as for <see cref="Attend"/>.</param>
    /// <param name="matchSingleCalls">On CUDA, split each cache's tokens as <see cref="Attend"/> for it alone does, so that
    /// row i is bit for bit that call's result (the launch then has N times one call's blocks); otherwise split them for
    /// the cache's share of the GPU (longer splits, fewer blocks; rows equal up to float32 rounding). The CPU is bit for bit
    /// either way.</param>
    /// <returns>float32 [N, Hq, Tq, Dv], owned by the caller.</returns>
    /// <exception cref="ArgumentException">The caches repeat, hold more than one batch item or differ in geometry, or the queries do not fit them.</exception>
    /// <exception cref="InvalidOperationException">A cache is empty.</exception>
    /// <exception cref="NotSupportedException"><paramref name="path"/> is not accelerated here, or a cache does not fit the Cuda kernels it names.</exception>
    /// <remarks>Thread safety: as <see cref="Attend"/>; the caches must not change during the call.</remarks>
    public static Tensor AttendBatch(IReadOnlyList<QuantizedKVCache> caches, Tensor queries, bool causal = false, double? scale = null, FusedKernelPath path = FusedKernelPath.Auto, bool matchSingleCalls = false)
    {
        var (device, dv) = CheckBatch(caches, queries, causal);
        using var scope = NewDisposeScope();
        var output = empty(new[] { queries.size(0), queries.size(1), queries.size(2), dv }, ScalarType.Float32, queries.device);
        var rows = Enumerable.Range(0, caches.Count).ToArray();
        AttendRows(caches, rows, queries.is_contiguous() ? queries : queries.contiguous(), output, causal, scale ?? (1.0 / Math.Sqrt(queries.size(3))), path, device, matchSingleCalls);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="AttendBatch"/> for the given rows: cache i reads row <paramref name="rows"/>[i] of the contiguous
    /// <paramref name="queries"/> and writes the same row of <paramref name="output"/> (float32 [N, Hq, Tq, Dv], contiguous).
    /// The arguments are checked (<see cref="CheckBatch"/>).
    /// </summary>
    internal static void AttendRows(IReadOnlyList<QuantizedKVCache> caches, IReadOnlyList<int> rows, Tensor queries, Tensor output, bool causal, double scale, FusedKernelPath path, DeviceType device, bool matchSingleCalls)
    {
        if (caches.Count == 0)
        {
            return;
        }

        if (device == DeviceType.CPU && path != FusedKernelPath.Chunked)
        {
            if (path == FusedKernelPath.Cuda)
            {
                throw new ArgumentException("The Cuda kernel path needs the caches and queries on a CUDA device; they are on the CPU.", nameof(path));
            }

            CpuBatchedFusedAttention.Attend(caches, rows, queries, output, causal, scale, path);
            return;
        }

        long hq = queries.size(1), tq = queries.size(2), d = queries.size(3);
        var kernels = new List<QuantizedKVCache>();
        var kernelRows = new List<int>();
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i];
            bool fits = device == DeviceType.CUDA && path != FusedKernelPath.Chunked && CudaFusedAttention.Fits(cache, 1, hq, tq, d, queries.dtype);
            if (path == FusedKernelPath.Cuda && !fits)
            {
                throw !CudaFusedAttention.IsAvailable
                    ? new NotSupportedException($"The Cuda kernel path cannot run here: {CudaFusedAttention.Description}")
                    : new NotSupportedException($"The Cuda kernel path handles at most {CudaFusedAttention.MaxQueryRows} query heads per KV head (and the value channels, query type and shared memory of its launches); use Auto or Chunked.");
            }

            if (fits && (path == FusedKernelPath.Cuda || CudaFusedAttention.Compiles(queries.device_index)))
            {
                kernels.Add(cache);
                kernelRows.Add(rows[i]);
                continue;
            }

            using var scope = NewDisposeScope();
            output.narrow(0, rows[i], 1).copy_(ChunkedFusedAttention.Attend(cache, queries.narrow(0, rows[i], 1), causal, scale, ChunkedFusedAttention.DefaultChunkTokens));
        }

        if (kernels.Count > 0)
        {
            CudaFusedAttention.AttendBatch(kernels, kernelRows, queries, output, causal, scale, matchSingleCalls);
        }
    }

    /// <summary>Whether <see cref="FusedKernelPath.Auto"/> would run the NVRTC kernels for this CUDA cache and query.</summary>
    internal static bool CudaKernelsApply(QuantizedKVCache cache, Tensor query)
        => query.device_type == DeviceType.CUDA && CudaFusedAttention.Fits(cache, query) && CudaFusedAttention.Compiles(query.device_index);

    /// <summary>
    /// Validates a batch: N distinct non-empty caches of one batch item, one head geometry and one device, and queries
    /// [N, Hq, Tq, D] that fit each; returns the device type and the value channels.
    /// </summary>
    internal static (DeviceType Device, long ValueChannels) CheckBatch(IReadOnlyList<QuantizedKVCache> caches, Tensor queries, bool causal)
    {
        ArgumentNullException.ThrowIfNull(caches);
        ArgumentNullException.ThrowIfNull(queries);
        if (caches.Count == 0)
        {
            throw new ArgumentException("A batch needs at least one cache.", nameof(caches));
        }

        if (queries.dim() != 4 || !queries.is_floating_point() || queries.size(0) != caches.Count)
        {
            throw new ArgumentException($"The queries must be a floating-point [N, Hq, Tq, D] tensor with N = {caches.Count} (one row per cache); got {queries.dtype} [{string.Join(", ", queries.shape)}].", nameof(queries));
        }

        var seen = new HashSet<QuantizedKVCache>(ReferenceEqualityComparer.Instance);
        DeviceType device = default;
        long dv = 0;
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i] ?? throw new ArgumentException($"Cache {i} is null.", nameof(caches));
            if (!seen.Add(cache))
            {
                throw new ArgumentException($"Cache {i} appears twice: each sequence of a batch has its own cache.", nameof(caches));
            }

            var (type, batch, valueChannels) = CheckShape(cache, queries, null, causal);
            if (batch != 1)
            {
                throw new ArgumentException($"Cache {i} holds {batch} batch items; a batch step needs caches of one item each (one sequence per row).", nameof(caches));
            }

            if (i > 0 && valueChannels != dv)
            {
                throw new ArgumentException($"Cache {i} has {valueChannels} value channels but cache 0 has {dv}: a batch has one head geometry.", nameof(caches));
            }

            (device, dv) = (type, valueChannels);
        }

        return (device, dv);
    }

    /// <summary>Validates the query against the cache; returns the cache's device type.</summary>
    internal static DeviceType Check(QuantizedKVCache cache, Tensor query, bool causal)
    {
        if (query.dim() != 4 || !query.is_floating_point())
        {
            if (cache.Length == 0)
            {
                throw new InvalidOperationException("The cache is empty: attention needs at least one cached token.");
            }

            throw new ArgumentException($"The query must be a floating-point [B, Hq, Tq, D] tensor; got {query.dtype} [{string.Join(", ", query.shape)}].", nameof(query));
        }

        return CheckShape(cache, query, query.size(0), causal).Device;
    }

    /// <summary>
    /// Validates a 4-dimensional floating-point query against the cache: its batch must be <paramref name="batch"/> items
    /// (for one call; <see langword="null"/> for a row of a batch, which the caller checks); returns the cache's device
    /// type, batch and value channels.
    /// </summary>
    private static (DeviceType Device, long Batch, long ValueChannels) CheckShape(QuantizedKVCache cache, Tensor query, long? batch, bool causal)
    {
        if (cache.Length == 0)
        {
            throw new InvalidOperationException("The cache is empty: attention needs at least one cached token.");
        }

        var (cacheBatch, kvHeads, keyDim, valueDim, device) = cache.Blocks.Count > 0
            ? (cache.Blocks[0].Keys.Shape[0], cache.Blocks[0].Keys.Shape[1], cache.Blocks[0].Keys.Shape[3], cache.Blocks[0].Values.Shape[3], cache.Blocks[0].Keys.OutlierChannels.device)
            : (cache.ResidualKeys!.size(0), cache.ResidualKeys.size(1), cache.ResidualKeys.size(3), cache.ResidualValues!.size(3), cache.ResidualKeys.device);
        if ((batch is { } b && b != cacheBatch) || query.size(3) != keyDim || query.size(1) < 1 || query.size(1) % kvHeads != 0 || query.size(2) < 1)
        {
            throw new ArgumentException(
                $"The query [{string.Join(", ", query.shape)}] does not fit the cache [B={cacheBatch}, H_kv={kvHeads}, D={keyDim}]: it needs B={cacheBatch} (per cache), a positive multiple of {kvHeads} heads, at least one token and D={keyDim}.",
                nameof(query));
        }

        if (causal && query.size(2) > cache.Length)
        {
            throw new ArgumentException($"A causal query of {query.size(2)} tokens must be the last of the cache's {cache.Length} positions.", nameof(query));
        }

        if (query.device_type != device.type || query.device_index != device.index)
        {
            throw new ArgumentException($"The query is on {query.device} but the cache is on {device}.", nameof(query));
        }

        return (device.type, cacheBatch, valueDim);
    }
}
