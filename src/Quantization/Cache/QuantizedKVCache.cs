using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// The key-value cache of one attention layer, compressed with VidKV: keys and values [B, H_kv, N, D] (H_kv are the
/// key-value heads, before grouped-query repetition) are quantized in whole groups of G tokens; the rest stays in a
/// full-precision residual until it reaches R tokens, then is flushed by the configured policy.
/// </summary>
/// <remarks>
/// <para>Prefill attention should use the unquantized keys and values; afterwards the first N - (N mod G) tokens are
/// quantized. A cache is not thread-safe: use one per request (and per layer) on one thread.</para>
/// <para>Tensors returned by <see cref="GetKeysValues"/> and <see cref="Attend"/> belong to the caller. The cache owns
/// copies of everything it holds (never views of the caller's tensors), so <see cref="Memory"/> is what it really holds.</para>
/// <para>Reference profile with per-token values (<see cref="FlushPolicy.RequantizeAll"/> and
/// <see cref="QuantizationAxis.PerToken"/>, e.g. kivi-2): as the released code, the values of every prefilled token are
/// quantized, the last N mod G included, while those tokens' keys stay in the residual (per-channel key groups need G
/// tokens). Per-token codes depend on their own token only, so the residual holds those values as read back from their
/// codes (in the residual's type), and a later re-quantization starts from them as the released code does. Values with
/// semantic token protection are not quantized early: protection ranks the tokens of a whole block.</para>
/// <para><see cref="CreateSnapshot"/> freezes the cache's content into a <see cref="QuantizedKVCacheSnapshot"/> whose
/// <see cref="QuantizedKVCacheSnapshot.Fork"/> makes new caches that share the quantized blocks read-only.</para>
/// </remarks>
public sealed class QuantizedKVCache : IDisposable
{
    private readonly MixedPrecisionKeyQuantizer? _keyQuantizer;
    private readonly ValueQuantizer? _valueQuantizer;
    private readonly List<QuantizedBlock> _blocks = new();
    private Tensor? _residualKeys;
    private Tensor? _residualValues;

    // After AppendDecodeStep: buffers [B, H, capacity, D] the residual is kept in (the residual tensors are then views of
    // their first ResidualLength tokens), so that a decode step writes its token in place; dropped by SetResidual.
    private Tensor? _keyStore;
    private Tensor? _valueStore;
    private long _storeCapacity;
    private Tensor? _scores;
    private long _batch, _heads, _keyDim, _valueDim;
    private ScalarType _dtype;
    private bool _disposed;

    /// <summary>Creates an empty cache.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it and what is allowed.</exception>
    public QuantizedKVCache(KVCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        if (!options.IsQuantized)
        {
            return;
        }

        int g = options.GroupSize;
        var sign = new SignQuantizer(QuantizationAxis.PerChannel, g, options.SignReconstruction, options.MetadataType, storeZeroPoint: options.ReferenceMetadata);
        _keyQuantizer = new MixedPrecisionKeyQuantizer(
            options.KeyBits,
            new AsymmetricQuantizer(options.OutlierBits, QuantizationAxis.PerChannel, g, options.MetadataType),
            new OneBitKeyQuantizer(options.OneBitKeys, sign),
            new KeyChannelSelector(options.ChannelStatistic, options.OutlierThreshold));

        TensorQuantizer asym = new AsymmetricQuantizer(options.ValueBits, options.ValueAxis, g, options.MetadataType);
        TensorQuantizer Ternary() => new TernaryQuantizer(options.ValueAxis, g, options.TernaryGamma, options.ScaledTernary,
            options.TernaryPacking, options.MetadataType, referenceMetadata: options.ReferenceMetadata && !options.ScaledTernary);
        _valueQuantizer = options.Values switch
        {
            ValueQuantization.Asymmetric => new ValueQuantizer(asym),
            ValueQuantization.Ternary => new ValueQuantizer(Ternary()),
            _ => new ValueQuantizer(Ternary(), asym, new SemanticTokenProtection(options.ProtectedFraction, g)),
        };
    }

    /// <summary>The validated options.</summary>
    public KVCacheOptions Options { get; }

    /// <summary>Cached tokens.</summary>
    public long Length => QuantizedLength + ResidualLength;

    /// <summary>Tokens held in quantized form.</summary>
    public long QuantizedLength => _blocks.Sum(b => b.Tokens);

    /// <summary>Tokens held in the full-precision residual.</summary>
    public long ResidualLength => _residualKeys?.size(2) ?? 0;

    /// <summary>How many times the residual was flushed into the quantized part.</summary>
    public int FlushCount { get; private set; }

    /// <summary>The quantized blocks, oldest first.</summary>
    internal IReadOnlyList<QuantizedBlock> Blocks => _blocks;

    /// <summary>
    /// The contiguous tensors the residual's elements live in (for kernels that read raw memory): the residual itself, or
    /// the buffers it is a view of, whose heads are <see cref="ResidualStride"/> tokens apart.
    /// </summary>
    internal (Tensor? Keys, Tensor? Values) ResidualStorage => _keyStore is null ? (_residualKeys, _residualValues) : (_keyStore, _valueStore);

    /// <summary>Tokens between two heads of <see cref="ResidualStorage"/>: <see cref="ResidualLength"/>, or the capacity of the buffers.</summary>
    internal long ResidualStride => _keyStore is null ? ResidualLength : _storeCapacity;

    /// <summary>Residual keys [B, H, R', D] (not a copy, possibly a view; do not dispose), or <see langword="null"/>.</summary>
    public Tensor? ResidualKeys => _residualKeys;

    /// <summary>Residual values [B, H, R', Dv] (not a copy; do not dispose), or <see langword="null"/>.</summary>
    public Tensor? ResidualValues => _residualValues;

    /// <summary>Importance scores [B, N] kept from the prompt for re-quantization (not a copy), or <see langword="null"/>.</summary>
    public Tensor? RetainedScores => _scores;

    /// <summary>The type keys and values arrived in, and are returned in.</summary>
    public ScalarType DType => _dtype;

    /// <summary>Device buffers the CUDA attention keeps for this cache (made once per block list), freed by <see cref="Clear"/>.</summary>
    internal IDisposable? CudaWorkspace { get; set; }

    /// <summary>
    /// Bytes actually held, by kind. A cache forked from a snapshot counts the blocks it shares with the snapshot too:
    /// they are held for it.
    /// </summary>
    public CacheMemory Memory => Measure(_blocks, _residualKeys, _residualValues, _scores, Shape, _keyStore, _valueStore);

    private CacheShape Shape => new(_batch, _heads, _keyDim, _valueDim, _dtype);

    /// <summary>
    /// Freezes what the cache holds now (typically right after the prefill of a prompt prefix) into an immutable
    /// snapshot. The quantized blocks are shared with the snapshot, not copied; the residual and the retained
    /// importance scores are copied. The cache stays usable and independent: appending to it, flushing or disposing it
    /// never changes the snapshot.
    /// </summary>
    /// <returns>A snapshot the caller owns and must dispose.</returns>
    /// <exception cref="InvalidOperationException">The cache is empty.</exception>
    public QuantizedKVCacheSnapshot CreateSnapshot()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length == 0)
        {
            throw new InvalidOperationException("An empty cache has nothing to snapshot: prefill it first.");
        }

        var blocks = new List<QuantizedBlock>(_blocks.Count);
        Tensor? keys = null, values = null, scores = null;
        try
        {
            foreach (var b in _blocks)
            {
                blocks.Add(b.Share());
            }

            keys = Copy(_residualKeys);
            values = Copy(_residualValues);
            scores = Copy(_scores);
            return new QuantizedKVCacheSnapshot(Options, Shape, blocks.ToArray(), keys, values, scores, FlushCount);
        }
        catch
        {
            blocks.ForEach(b => b.Dispose());
            keys?.Dispose();
            values?.Dispose();
            scores?.Dispose();
            throw;
        }
    }

    /// <summary>Fills this new, empty cache with a snapshot's content: its blocks shared, its residual and scores copied.</summary>
    internal void Restore(QuantizedKVCacheSnapshot snapshot)
    {
        var blocks = new List<QuantizedBlock>(snapshot.Blocks.Count);
        Tensor? keys = null, values = null, scores = null;
        try
        {
            foreach (var b in snapshot.Blocks)
            {
                blocks.Add(b.Share());
            }

            keys = Copy(snapshot.ResidualKeys);
            values = Copy(snapshot.ResidualValues);
            scores = Copy(snapshot.RetainedScores);
        }
        catch
        {
            blocks.ForEach(b => b.Dispose());
            keys?.Dispose();
            values?.Dispose();
            scores?.Dispose();
            throw;
        }

        _blocks.AddRange(blocks);
        (_residualKeys, _residualValues, _scores) = (keys, values, scores);
        (_batch, _heads, _keyDim, _valueDim, _dtype) = snapshot.Shape;
        FlushCount = snapshot.FlushCount;
    }

    /// <summary>The bytes that the given tensors hold, by kind.</summary>
    /// <param name="blocks">The quantized blocks.</param>
    /// <param name="residualKeys">The residual keys, or null.</param>
    /// <param name="residualValues">The residual values, or null.</param>
    /// <param name="scores">Retained importance scores, or null.</param>
    /// <param name="shape">The cache's geometry.</param>
    /// <param name="keyStore">The buffer the residual keys are a view of, if any: its bytes are what the residual holds.</param>
    /// <param name="valueStore">The same for the values.</param>
    internal static CacheMemory Measure(IReadOnlyList<QuantizedBlock> blocks, Tensor? residualKeys, Tensor? residualValues, Tensor? scores, CacheShape shape, Tensor? keyStore = null, Tensor? valueStore = null)
    {
        long codes = 0, meta = 0, index = QuantizedTensor.Bytes(scores), quantized = 0;
        foreach (var b in blocks)
        {
            codes += b.Keys.CodeBytes + b.Values.CodeBytes;
            meta += b.Keys.MetadataBytes + b.Values.MetadataBytes;
            index += b.Keys.IndexBytes + b.Values.IndexBytes;
            quantized += b.Tokens;
        }

        long residual = QuantizedTensor.Bytes(keyStore ?? residualKeys) + QuantizedTensor.Bytes(valueStore ?? residualValues);
        long residualTokens = residualKeys?.size(2) ?? 0;
        return new CacheMemory(codes, meta, index, residual, quantized * shape.ElementsPerToken, residualTokens * shape.ElementsPerToken);
    }

    /// <summary>A compact copy of a held tensor (a view's elements only), outside every dispose scope (the copy keeps the tensor's type).</summary>
    private static Tensor? Copy(Tensor? t) => t is null ? null : (t.is_contiguous() ? t.clone() : t.contiguous()).DetachFromDisposeScope();

    /// <summary>
    /// Fills an empty cache with a prompt's keys and values [B, H, N, D] and quantizes the whole groups.
    /// </summary>
    /// <param name="keys">Post-RoPE keys [B, H_kv, N, D].</param>
    /// <param name="values">Values [B, H_kv, N, Dv].</param>
    /// <param name="importance">
    /// One score per token ([N] or [B, N]) for semantic token protection; NaN or infinite for tokens that may not be
    /// protected (text). Ignored unless values use protection.
    /// </param>
    /// <exception cref="InvalidOperationException">The cache is not empty.</exception>
    /// <exception cref="ArgumentException">A tensor has the wrong rank, type or shape.</exception>
    public void Prefill(Tensor keys, Tensor values, Tensor? importance = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length > 0)
        {
            throw new InvalidOperationException($"Prefill needs an empty cache; this one holds {Length} tokens. Use Append to add tokens.");
        }

        CheckKeysValues(keys, values, first: true);
        long n = keys.size(2);
        using var scope = NewDisposeScope();
        Tensor? scores = importance is null ? null : CheckScores(importance, n);
        if (!Options.IsQuantized)
        {
            SetResidual(keys, values);
            return;
        }

        long quantized = n - (n % Options.GroupSize);
        if (quantized > 0)
        {
            _blocks.Add(QuantizeBlock(0, keys.narrow(2, 0, quantized), values.narrow(2, 0, quantized), scores?.narrow(1, 0, quantized)));
        }

        SetResidual(keys.narrow(2, quantized, n - quantized), TailValues(values.narrow(2, quantized, n - quantized)));
        if (scores is not null && Options.Flush == FlushPolicy.RequantizeAll && _valueQuantizer!.Protection is not null)
        {
            // Re-quantizing everything later needs the prompt's scores again.
            _scores = scores.clone().DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// Appends keys and values [B, H, T, D] (a decode step, or a chunk) to the residual and flushes when it reaches R.
    /// On an empty cache this is <see cref="Prefill"/> without importance scores.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor has the wrong rank, type or a shape that does not match the cache.</exception>
    public void Append(Tensor keys, Tensor values)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length == 0)
        {
            Prefill(keys, values);
            return;
        }

        CheckKeysValues(keys, values, first: false);
        using var scope = NewDisposeScope();
        SetResidual(cat(new[] { _residualKeys!, keys.to(_residualKeys!.dtype) }, 2), cat(new[] { _residualValues!, values.to(_residualValues!.dtype) }, 2));
        FlushIfFull();
    }

    /// <summary>
    /// Appends one decode step to N caches at once: row i of <paramref name="keys"/> [N, H, 1, D] and
    /// <paramref name="values"/> [N, H, 1, Dv] goes to <paramref name="caches"/>[i], with the result of
    /// <c>caches[i].Append(row i)</c> (the same residual, the same flushes). Each cache keeps its residual in buffers
    /// with room for the tokens before its next flush, so a step writes the new token in place: one kernel launch for
    /// every cache on CUDA (where the NVRTC kernels run), one copy per cache and head on the CPU, nothing allocated
    /// between flushes. A decoding cache therefore holds R tokens of residual buffers (<see cref="Memory"/> counts them).
    /// An empty cache, an unquantized one (its residual is the whole cache: no fixed room to keep), or a row its cache
    /// does not take goes through <see cref="Append"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The counts or shapes disagree, a cache repeats, or a row does not fit its cache.</exception>
    public static void AppendDecodeStep(IReadOnlyList<QuantizedKVCache> caches, Tensor keys, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(caches);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        if (keys.dim() != 4 || values.dim() != 4 || keys.size(0) != caches.Count || values.size(0) != caches.Count || keys.size(2) != 1 || values.size(2) != 1)
        {
            throw new ArgumentException(
                $"A decode step for {caches.Count} caches takes keys [{caches.Count}, H, 1, D] and values [{caches.Count}, H, 1, Dv]; got [{string.Join(", ", keys.shape)}] and [{string.Join(", ", values.shape)}].", nameof(keys));
        }

        using var scope = NewDisposeScope();
        long heads = keys.size(1), keyDim = keys.size(3), valueDim = values.size(3);
        var device = keys.device;
        var seen = new HashSet<QuantizedKVCache>(ReferenceEqualityComparer.Instance);
        var inPlace = new List<(QuantizedKVCache Cache, int Row)>(caches.Count);
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i] ?? throw new ArgumentException($"caches[{i}] is null.", nameof(caches));
            ObjectDisposedException.ThrowIf(cache._disposed, cache);
            if (!seen.Add(cache))
            {
                throw new ArgumentException($"caches[{i}] appears twice in one decode step; each sequence has its own cache.", nameof(caches));
            }

            if (cache.Length > 0 && cache.Options.IsQuantized && cache._batch == 1 && cache._heads == heads && cache._keyDim == keyDim && cache._valueDim == valueDim
                && keys.is_floating_point() && values.is_floating_point() && cache.ResidualDevice() is { } d && d.type == device.type && d.index == device.index)
            {
                inPlace.Add((cache, i));
            }
            else
            {
                cache.Append(keys.narrow(0, i, 1), values.narrow(0, i, 1)); // checks the row, or fills an empty cache
            }
        }

        if (inPlace.Count == 0)
        {
            return;
        }

        // The rows in each residual type (usually the keys' own: no conversion), contiguous.
        var typed = new Dictionary<ScalarType, (Tensor Keys, Tensor Values)>();
        var slots = new ResidualAppend.Slot[inPlace.Count];
        for (int j = 0; j < inPlace.Count; j++)
        {
            var (cache, row) = inPlace[j];
            var type = cache.ResidualTypeNow;
            if (!typed.TryGetValue(type, out var rows))
            {
                typed[type] = rows = (keys.to(type).contiguous(), values.to(type).contiguous());
            }

            slots[j] = cache.ReserveSlot(type, device, rows.Keys, rows.Values, row);
        }

        ResidualAppend.Copy(slots, device);
        foreach (var (cache, _) in inPlace)
        {
            cache.CommitSlot();
            cache.FlushIfFull();
        }
    }

    /// <summary>The type the residual is kept in.</summary>
    private ScalarType ResidualTypeNow => _residualKeys?.dtype ?? Options.ResidualType ?? KVCacheOptions.DefaultResidualType(_dtype);

    /// <summary>The device of what the cache holds.</summary>
    private Device? ResidualDevice() => _residualKeys?.device ?? (_blocks.Count > 0 ? _blocks[0].Values.Rest.Codes.device : null);

    /// <summary>
    /// Makes room for one more residual token (buffers of the residual's capacity, the residual copied in once) and
    /// returns where row <paramref name="row"/> of the step goes.
    /// </summary>
    private ResidualAppend.Slot ReserveSlot(ScalarType type, Device device, Tensor keys, Tensor values, int row)
    {
        long length = ResidualLength;
        if (_keyStore is null || _storeCapacity < length + 1 || _keyStore.dtype != type)
        {
            // Room up to the next flush (R tokens).
            long capacity = Math.Max(Options.ResidualLength, length + 1);
            var keyStore = empty(new[] { _batch, _heads, capacity, _keyDim }, type, device).DetachFromDisposeScope();
            var valueStore = empty(new[] { _batch, _heads, capacity, _valueDim }, type, device).DetachFromDisposeScope();
            if (length > 0)
            {
                keyStore.narrow(2, 0, length).copy_(_residualKeys!);
                valueStore.narrow(2, 0, length).copy_(_residualValues!);
            }

            _residualKeys?.Dispose();
            _residualValues?.Dispose();
            DropStores();
            (_keyStore, _valueStore, _storeCapacity) = (keyStore, valueStore, capacity);
            _residualKeys = keyStore.narrow(2, 0, length).DetachFromDisposeScope();
            _residualValues = valueStore.narrow(2, 0, length).DetachFromDisposeScope();
        }

        return new ResidualAppend.Slot(keys, values, row, _keyStore, _valueStore!, length, _storeCapacity);
    }

    /// <summary>The residual grows by the token <see cref="ReserveSlot"/> made room for.</summary>
    private void CommitSlot()
    {
        long length = ResidualLength + 1;
        _residualKeys!.Dispose();
        _residualValues!.Dispose();
        _residualKeys = _keyStore!.narrow(2, 0, length).DetachFromDisposeScope();
        _residualValues = _valueStore!.narrow(2, 0, length).DetachFromDisposeScope();
    }

    private void DropStores()
    {
        _keyStore?.Dispose();
        _valueStore?.Dispose();
        (_keyStore, _valueStore, _storeCapacity) = (null, null, 0);
    }

    /// <summary>Flushes the residual by the configured policy once it holds R tokens.</summary>
    private void FlushIfFull()
    {
        if (!Options.IsQuantized || ResidualLength < Options.ResidualLength)
        {
            return;
        }

        using var scope = NewDisposeScope();

        if (Options.Flush == FlushPolicy.Streaming)
        {
            while (ResidualLength >= Options.ResidualLength)
            {
                long r = Options.ResidualLength, rest = ResidualLength - r;
                _blocks.Add(QuantizeBlock(QuantizedLength, _residualKeys!.narrow(2, 0, r), _residualValues!.narrow(2, 0, r), null));
                SetResidual(_residualKeys!.narrow(2, r, rest), _residualValues!.narrow(2, r, rest));
                FlushCount++;
            }
        }
        else if (ResidualLength >= Options.ResidualLength)
        {
            var (allKeys, allValues) = Materialize(ScalarType.Float32);
            long total = allKeys.size(2), quantized = total - (total % Options.GroupSize);
            Tensor? scores = null;
            if (_scores is not null)
            {
                long known = Math.Min(_scores.size(1), quantized);
                scores = cat(new[] { _scores.narrow(1, 0, known), full(_batch, quantized - known, Scalars.NaN, ScalarType.Float32, _scores.device) }, 1);
            }

            var block = QuantizeBlock(0, allKeys.narrow(2, 0, quantized), allValues.narrow(2, 0, quantized), scores);
            ClearBlocks();
            _blocks.Add(block);
            SetResidual(allKeys.narrow(2, quantized, total - quantized), TailValues(allValues.narrow(2, quantized, total - quantized)));
            FlushCount++;
        }
    }

    /// <summary>All cached keys and values [B, H, N, D], dequantized, in <see cref="DType"/>. The caller owns them.</summary>
    /// <exception cref="InvalidOperationException">The cache is empty.</exception>
    public (Tensor Keys, Tensor Values) GetKeysValues()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length == 0)
        {
            throw new InvalidOperationException("The cache is empty.");
        }

        using var scope = NewDisposeScope();
        var (k, v) = Materialize(_dtype);
        return (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Reference decode attention: dequantizes the whole cache, then attends (float32). Queries [B, Hq, Tq, D] with
    /// Hq a multiple of H_kv; with <paramref name="causal"/> they are the last Tq cached positions.
    /// </summary>
    public Tensor Attend(Tensor query, bool causal = false)
    {
        using var scope = NewDisposeScope();
        var (k, v) = GetKeysValues();
        return ReferenceAttention.Attend(query, k, v, causal).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Decode attention straight from the packed codes (<see cref="FusedAttention"/>): the same result as
    /// <see cref="Attend"/> up to float32 rounding, without dequantizing the cache. Queries [B, Hq, Tq, D] on the cache's
    /// device, Hq a multiple of H_kv; with <paramref name="causal"/> they are the last Tq cached positions.
    /// </summary>
    /// <param name="query">Queries [B, Hq, Tq, D], any floating type.</param>
    /// <param name="causal">Mask future positions for multi-token queries.</param>
    /// <param name="scale">Softmax scale; default 1/sqrt(D).</param>
    /// <param name="path">CPU kernel path; <see cref="FusedKernelPath.Auto"/> picks the widest this processor accelerates.</param>
    /// <returns>float32 [B, Hq, Tq, Dv], owned by the caller.</returns>
    /// <exception cref="ArgumentException">The query does not fit the cache (rank, type, shape or device).</exception>
    /// <exception cref="InvalidOperationException">The cache is empty.</exception>
    public Tensor AttendFused(Tensor query, bool causal = false, double? scale = null, FusedKernelPath path = FusedKernelPath.Auto)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return FusedAttention.Attend(this, query, causal, scale, path);
    }

    /// <summary>
    /// Decode attention as <see cref="KVCacheOptions.DecodeAttention"/> asks: <see cref="AttendFused"/> or
    /// <see cref="Attend"/>. <see cref="DecodeAttention.Auto"/> reads the packed codes when the cache holds quantized
    /// blocks on the CPU or the CUDA kernels take the query, and dequantizes otherwise (a cache without quantized blocks
    /// attends over its residual either way); on a GPU the dequantized cache keeps its own type and the query heads are
    /// folded per KV head (<c>scaled_dot_product_attention</c>), as for a question prefilled over a remembered video.
    /// </summary>
    /// <param name="query">Queries [B, Hq, Tq, D] on the cache's device.</param>
    /// <param name="causal">Mask future positions for multi-token queries.</param>
    /// <returns>float32 [B, Hq, Tq, Dv], owned by the caller.</returns>
    public Tensor AttendForDecode(Tensor query, bool causal)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (DecodesFused(query))
        {
            return AttendFused(query, causal);
        }

        if (query.device_type != TorchSharp.DeviceType.CPU && Options.DecodeAttention == DecodeAttention.Auto)
        {
            // On a GPU, where the fused kernels do not take the query (a question of many tokens over a remembered video):
            // dequantize to the cache's type once and attend with the query heads folded, not through float32 copies per head.
            using var scope = NewDisposeScope();
            var (k, v) = Materialize(_dtype);
            return ReferenceAttention.AttendFolded(query, k, v, causal).MoveToOuterDisposeScope();
        }

        return Attend(query, causal);
    }

    /// <summary>
    /// One batched decode step: sequence i attends with row i of <paramref name="queries"/> [N, Hq, Tq, D] over
    /// <paramref name="caches"/>[i], each cache as its own <see cref="AttendForDecode(Tensor, bool)"/> would (its
    /// <see cref="KVCacheOptions.DecodeAttention"/>), with the fused caches served together
    /// (<see cref="FusedAttention.AttendBatch"/>: one CUDA launch per layer, or one parallel loop on the CPU). The result
    /// is what per-sequence calls give, row by row (see <paramref name="matchSingleCalls"/>).
    /// </summary>
    /// <param name="caches">N distinct, non-empty caches of one batch item each, with one head geometry, on the queries' device.</param>
    /// <param name="queries">Queries [N, Hq, Tq, D]: row i for cache i.</param>
    /// <param name="causal">Mask future positions for multi-token queries.</param>
    /// <param name="matchSingleCalls">On CUDA, split each cache's tokens as a call for it alone does, so that row i is
    /// bit for bit what that call gives (the launch then has N times one call's blocks); otherwise split them for the
    /// cache's share of the GPU (longer splits, fewer blocks; rows equal to float32 rounding). The CPU is bit for bit either way.</param>
    /// <returns>float32 [N, Hq, Tq, Dv], owned by the caller.</returns>
    /// <exception cref="ArgumentException">The caches repeat, hold more than one batch item or differ in geometry, or the queries do not fit them.</exception>
    /// <exception cref="InvalidOperationException">A cache is empty.</exception>
    public static Tensor AttendForDecode(IReadOnlyList<QuantizedKVCache> caches, Tensor queries, bool causal, bool matchSingleCalls = false)
    {
        var (device, dv) = FusedAttention.CheckBatch(caches, queries, causal);
        using var scope = NewDisposeScope();
        var q = queries.is_contiguous() ? queries : queries.contiguous();
        var output = empty(new[] { q.size(0), q.size(1), q.size(2), dv }, ScalarType.Float32, q.device);
        var fused = new List<QuantizedKVCache>(caches.Count);
        var rows = new List<int>(caches.Count);
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i];
            ObjectDisposedException.ThrowIf(cache._disposed, cache);
            using var inner = NewDisposeScope();
            var row = q.narrow(0, i, 1);
            if (cache.DecodesFused(row))
            {
                fused.Add(cache);
                rows.Add(i);
                continue;
            }

            output.narrow(0, i, 1).copy_(cache.AttendForDecode(row, causal));
        }

        FusedAttention.AttendRows(fused, rows, q, output, causal, 1.0 / Math.Sqrt(q.size(3)), FusedKernelPath.Auto, device, matchSingleCalls);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>Whether <see cref="AttendForDecode(Tensor, bool)"/> reads the packed codes for this query (the
    /// <see cref="KVCacheOptions.DecodeAttention"/> choice; Auto: quantized blocks on the CPU, or CUDA kernels that take it).</summary>
    private bool DecodesFused(Tensor query) => Options.DecodeAttention switch
    {
        DecodeAttention.Fused => true,
        DecodeAttention.Dequantize => false,
        _ => _blocks.Count > 0 && (query.device_type == TorchSharp.DeviceType.CPU || FusedAttention.CudaKernelsApply(this, query)),
    };

    /// <summary>Drops every cached token and frees its memory; the cache can be prefilled again.</summary>
    public void Clear()
    {
        CudaWorkspace?.Dispose();
        CudaWorkspace = null;
        ClearBlocks();
        _residualKeys?.Dispose();
        _residualValues?.Dispose();
        DropStores();
        _scores?.Dispose();
        _residualKeys = _residualValues = _scores = null;
        FlushCount = 0;
        _batch = _heads = _keyDim = _valueDim = 0;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            Clear();
            _disposed = true;
        }
    }

    private QuantizedBlock QuantizeBlock(long start, Tensor keys, Tensor values, Tensor? scores)
        => new(start, _keyQuantizer!.Quantize(keys), _valueQuantizer!.Quantize(values, scores));

    /// <summary>
    /// The values of tokens left in the residual after a quantization: as read back from their per-token codes where
    /// the released code quantizes every token's values (re-quantize-all flush, per-token values, no protection), else
    /// unchanged.
    /// </summary>
    private Tensor TailValues(Tensor values)
    {
        if (values.size(2) == 0 || !Options.IsQuantized || Options.Flush != FlushPolicy.RequantizeAll || Options.ValueAxis != QuantizationAxis.PerToken
            || _valueQuantizer!.Protection is not null)
        {
            return values;
        }

        using var codes = _valueQuantizer.Quantize(values, null);
        return _valueQuantizer.Dequantize(codes);
    }

    private (Tensor Keys, Tensor Values) Materialize(ScalarType type)
    {
        var ks = new List<Tensor>();
        var vs = new List<Tensor>();
        foreach (var b in _blocks)
        {
            ks.Add(_keyQuantizer!.Dequantize(b.Keys).to(type));
            vs.Add(_valueQuantizer!.Dequantize(b.Values).to(type));
        }

        if (ResidualLength > 0)
        {
            ks.Add(_residualKeys!.to(type));
            vs.Add(_residualValues!.to(type));
        }

        return (ks.Count == 1 ? ks[0] : cat(ks, 2), vs.Count == 1 ? vs[0] : cat(vs, 2));
    }

    private void SetResidual(Tensor keys, Tensor values)
    {
        var type = Options.ResidualType ?? KVCacheOptions.DefaultResidualType(_dtype);

        // Own a compact copy: never a view that keeps a caller's (or an old residual's) storage alive.
        var k = keys.to(type).clone().DetachFromDisposeScope();
        var v = values.to(type).clone().DetachFromDisposeScope();
        _residualKeys?.Dispose();
        _residualValues?.Dispose();
        DropStores();
        _residualKeys = k;
        _residualValues = v;
    }

    private void ClearBlocks()
    {
        foreach (var b in _blocks)
        {
            b.Dispose();
        }

        _blocks.Clear();
    }

    private void CheckKeysValues(Tensor keys, Tensor values, bool first)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        if (keys.dim() != 4 || values.dim() != 4)
        {
            throw new ArgumentException($"Keys and values must be [B, H, N, D]; got ranks {keys.dim()} and {values.dim()}.", nameof(keys));
        }

        if (!keys.is_floating_point() || !values.is_floating_point())
        {
            throw new ArgumentException($"Keys and values must be floating point; got {keys.dtype} and {values.dtype}.", nameof(keys));
        }

        if (keys.size(0) != values.size(0) || keys.size(1) != values.size(1) || keys.size(2) != values.size(2))
        {
            throw new ArgumentException($"Keys [{string.Join(", ", keys.shape)}] and values [{string.Join(", ", values.shape)}] must agree on B, H and N.", nameof(values));
        }

        if (first)
        {
            if (keys.size(0) < 1 || keys.size(1) < 1 || keys.size(3) < 1 || values.size(3) < 1)
            {
                throw new ArgumentException($"Keys [{string.Join(", ", keys.shape)}] must have at least one batch item, head and channel.", nameof(keys));
            }

            (_batch, _heads, _keyDim, _valueDim, _dtype) = (keys.size(0), keys.size(1), keys.size(3), values.size(3), keys.dtype);
            return;
        }

        if (keys.size(0) != _batch || keys.size(1) != _heads || keys.size(3) != _keyDim || values.size(3) != _valueDim)
        {
            throw new ArgumentException(
                $"Appended keys [{string.Join(", ", keys.shape)}] / values [{string.Join(", ", values.shape)}] do not match the cache's [B={_batch}, H={_heads}, D={_keyDim}, Dv={_valueDim}].",
                nameof(keys));
        }
    }

    private Tensor CheckScores(Tensor importance, long n)
    {
        var s = importance.dim() == 1 ? importance.unsqueeze(0).expand(_batch, -1) : importance;
        if (s.dim() != 2 || s.size(0) != _batch || s.size(1) != n)
        {
            throw new ArgumentException($"Importance scores must be [N] or [B, N] = [{_batch}, {n}]; got [{string.Join(", ", importance.shape)}].", nameof(importance));
        }

        return s.to(ScalarType.Float32);
    }
}
