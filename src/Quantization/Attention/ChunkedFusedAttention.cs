using TorchSharp;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Fused decode attention with TorchSharp operations on any device: the cache is read in runs of at most
/// <c>chunkTokens</c> tokens with an online softmax, so the temporaries are bounded by the run length, never a copy
/// of the cache. Keys: code levels times a query scaled by each group's scales, plus the zero points' constant; 1-bit
/// FFT components against the query's transform (no inverse FFT). Values: per-channel groups accumulate Σ p·level and
/// apply scale and zero point once per group.
/// </summary>
/// <remarks>
/// Values are visited in storage order (protected tokens, then the rest, for semantic token protection), each with
/// its key: without protection keys are read group-wise; with it, the keys of the scattered positions are gathered and
/// their query scaled per token.
/// </remarks>
internal static class ChunkedFusedAttention
{
    /// <summary>Default tokens per run.</summary>
    public const int DefaultChunkTokens = 1024;

    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale, int chunkTokens)
    {
        var o = cache.Options;
        int g = o.GroupSize;
        long chunk = Math.Max(1, chunkTokens / g) * g;
        long b = query.size(0), hq = query.size(1), tq = query.size(2), d = query.size(3);
        using var scope = NewDisposeScope();
        var first = cache.Blocks.Count > 0 ? null : cache.ResidualKeys;
        long hkv = cache.Blocks.Count > 0 ? cache.Blocks[0].Keys.Shape[1] : first!.size(1);
        long groups = hq / hkv, nq = groups * tq, n = cache.Length;
        using var factor = scale.ToScalar();

        // [B, Hkv, nq, D]: the query heads of one KV head (and their tokens) as rows.
        var q = query.to(ScalarType.Float32).reshape(b, hkv, nq, d).mul(factor);
        Tensor? limits = null;
        if (causal)
        {
            // Query row i is token i mod Tq, at position n - Tq + (i mod Tq).
            limits = tensor(Enumerable.Range(0, (int)nq).Select(i => n - tq + (i % tq)).ToArray(), ScalarType.Int64, q.device).reshape(1, 1, nq, 1);
        }

        using var state = new SoftmaxState(b, hkv, nq, q.device);
        foreach (var block in cache.Blocks)
        {
            RunBlock(block, o, q, limits, chunk, state);
        }

        if (cache.ResidualLength > 0)
        {
            var rk = cache.ResidualKeys!;
            var rv = cache.ResidualValues!;
            long r = rk.size(2);
            for (long c0 = 0; c0 < r; c0 += chunk)
            {
                using var inner = NewDisposeScope();
                long len = Math.Min(chunk, r - c0);
                var scores = matmul(q, rk.narrow(2, c0, len).to(ScalarType.Float32).transpose(2, 3));
                var positions = Positions(cache.QuantizedLength + c0, len, q.device).reshape(1, 1, 1, len);
                var p = state.Step(Mask(scores, positions, limits));
                state.Add(matmul(p, rv.narrow(2, c0, len).to(ScalarType.Float32)));
            }
        }

        var output = state.Result().reshape(b, hq, tq, -1);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>start, start + 1, ... (len values), int64.</summary>
    private static Tensor Positions(long start, long len, Device device)
    {
        using var first = start.ToScalar();
        using var stop = len.ToScalar();
        return arange(Scalars.ZeroInt64, stop, Scalars.OneInt64, ScalarType.Int64, device).add(first, Scalars.OneInt64);
    }

    private static Tensor Mask(Tensor scores, Tensor positions, Tensor? limits)
        => limits is null ? scores : scores.masked_fill(positions.gt(limits), Scalars.NegativeInfinity);

    private static void RunBlock(QuantizedBlock block, KVCacheOptions o, Tensor q, Tensor? limits, long chunk, SoftmaxState state)
    {
        using var scope = NewDisposeScope();
        long b = q.size(0);
        var qb = BlockQuery(block, o, q);
        var values = block.Values;
        var main = o.Values == ValueQuantization.Asymmetric ? ValueKind.Asymmetric : o.ScaledTernary ? ValueKind.ScaledTernary : ValueKind.Ternary;
        if (values.ProtectedTokens is null)
        {
            RunSource(block, o, qb, values.Rest, main, null, limits, chunk, state);
            return;
        }

        RunSource(block, o, qb, values.Protected!, ValueKind.Asymmetric, values.ProtectedTokens, limits, chunk, state);

        // The rest: the ascending positions not protected, [B, N - k].
        long n = block.Tokens;
        var mask = ones(b, n, ScalarType.Bool, q.device);
        mask.scatter_(1, values.ProtectedTokens, zeros(values.ProtectedTokens.shape, ScalarType.Bool, q.device));
        var rest = mask.nonzero().select(1, 1).reshape(b, n - values.ProtectedTokens.size(1));
        RunSource(block, o, qb, values.Rest, main, rest, limits, chunk, state);
    }

    /// <summary>
    /// The query rows [B, H, nq, D] in a block's channel order: its outlier channels, then the weights of its 1-bit
    /// components (<see cref="EasyWeights"/>), so that a key's score is the dot product with its read-back components.
    /// </summary>
    private static Tensor BlockQuery(QuantizedBlock block, KVCacheOptions o, Tensor q)
    {
        using var scope = NewDisposeScope();
        var keys = block.Keys;
        var parts = new List<Tensor>();
        if (keys.Outliers is not null)
        {
            parts.Add(q.index_select(3, keys.OutlierChannels));
        }

        if (keys.Easy is not null)
        {
            parts.Add(EasyWeights(q.index_select(3, keys.EasyChannels), o.OneBitKeys));
        }

        return (parts.Count == 1 ? parts[0] : cat(parts, 3)).MoveToOuterDisposeScope();
    }

    private enum ValueKind
    {
        Asymmetric,
        Ternary,
        ScaledTernary,
    }

    /// <summary>Attends over the tokens whose values <paramref name="v"/> holds (at <paramref name="positions"/> [B, T], or all in order).</summary>
    private static void RunSource(QuantizedBlock block, KVCacheOptions o, Tensor qb, QuantizedTensor v, ValueKind kind, Tensor? positions, Tensor? limits, long chunk, SoftmaxState state)
    {
        var keys = block.Keys;
        int g = o.GroupSize;
        long b = qb.size(0), h = qb.size(1), nq = qb.size(2);
        long rows = v.Shape[2];
        for (long r0 = 0; r0 < rows; r0 += chunk)
        {
            using var scope = NewDisposeScope();
            long len = Math.Min(chunk, rows - r0);
            var pos = positions?.narrow(1, r0, len);

            // Key code levels [B, H, len, Do + Ce], scales and zero points per token or per group.
            var (levels, kScale, kZero) = KeyRun(keys, o, pos, r0, len, g, qb.device);
            Tensor scores;
            if (pos is null)
            {
                // Group-wise: the query scaled once per group of G tokens.
                long ng = len / g;
                var qs = qb.unsqueeze(2) * kScale; // [B, H, ng, nq, C]
                scores = matmul(levels.reshape(b, h, ng, g, -1), qs.transpose(3, 4)); // [B, H, ng, G, nq]
                if (kZero is not null)
                {
                    scores = Scalars.Add(scores, matmul(kZero, qb.unsqueeze(2).transpose(3, 4)));
                }

                scores = scores.reshape(b, h, len, nq).transpose(2, 3);
            }
            else
            {
                // Scattered positions: the query scaled per token.
                var k = levels * kScale;
                if (kZero is not null)
                {
                    k = Scalars.Add(k, kZero);
                }

                scores = matmul(qb, k.transpose(2, 3));
            }

            using var start = block.Start.ToScalar();
            var absolute = (pos ?? Positions(r0, len, qb.device).unsqueeze(0)).add(start, Scalars.OneInt64).reshape(pos is null ? 1 : b, 1, 1, len);
            var p = state.Step(Mask(scores, absolute, limits)); // [B, H, nq, len]
            state.Add(ValueRun(v, kind, o.ValueAxis, p, r0, len, g));
        }
    }

    /// <summary>Σ_t p_t·v_t over rows [r0, r0 + len) of a value tensor, from its codes.</summary>
    private static Tensor ValueRun(QuantizedTensor v, ValueKind kind, QuantizationAxis axis, Tensor p, long r0, long len, int g)
    {
        long b = p.size(0), h = p.size(1), nq = p.size(2), dv = v.Shape[3];
        var codes = CodePacking.Unpack(v.Codes.narrow(2, r0, len), dv, v.Format).to(ScalarType.Float32);
        var levels = kind == ValueKind.Asymmetric ? codes : Scalars.MinusOne(codes);
        bool hasScale = kind != ValueKind.Ternary, hasZero = kind == ValueKind.Asymmetric;
        if (!hasScale)
        {
            return matmul(p, levels); // signed sums of the weights
        }

        if (axis == QuantizationAxis.PerToken)
        {
            var s = v.Scale!.narrow(2, r0, len).to(ScalarType.Float32); // [B, H, len, Dv/G, 1]
            var x = levels.reshape(b, h, len, dv / g, g) * s;
            if (hasZero)
            {
                x = Scalars.Add(x, v.Zero!.narrow(2, r0, len).to(ScalarType.Float32));
            }

            return matmul(p, x.reshape(b, h, len, dv));
        }

        // Per channel: per group, Σ p·level, then times the scale, plus the zero point times Σ p.
        long ng = len / g;
        var pg = p.reshape(b, h, nq, ng, g).transpose(2, 3); // [B, H, ng, nq, G]
        var sums = matmul(pg, levels.reshape(b, h, ng, g, dv)); // [B, H, ng, nq, Dv]
        var scale = v.Scale!.narrow(2, r0 / g, ng).to(ScalarType.Float32); // [B, H, ng, 1, Dv]
        var result = (sums * scale).sum(2);
        if (hasZero)
        {
            var zero = v.Zero!.narrow(2, r0 / g, ng).to(ScalarType.Float32);
            result = Scalars.Add(result, (pg.sum(-1, keepdim: true) * zero).sum(2));
        }

        return result;
    }

    /// <summary>
    /// Key code levels of a run [B, H, len, Do + Ce] and their scales and zero points: per group [B, H, len/G, 1, C]
    /// when <paramref name="pos"/> is null (rows r0.. in order), else per token [B, H, len, C] gathered at the positions.
    /// </summary>
    private static (Tensor Levels, Tensor Scale, Tensor? Zero) KeyRun(QuantizedKeys keys, KVCacheOptions o, Tensor? pos, long r0, long len, int g, Device device)
    {
        var levels = new List<Tensor>();
        var scales = new List<Tensor>();
        var zeros_ = new List<Tensor>();
        bool anyZero = keys.Outliers?.Zero is not null || keys.Easy?.Zero is not null;
        foreach (var (qt, isSign) in new[] { (keys.Outliers, false), (keys.Easy, true) })
        {
            if (qt is null)
            {
                continue;
            }

            var packed = pos is null ? qt.Codes.narrow(2, r0, len) : qt.Codes.gather(2, Expand(pos, qt.Codes.shape));
            var lv = CodePacking.Unpack(packed, qt.Shape[^1], qt.Format).to(ScalarType.Float32);
            if (isSign && o.SignReconstruction == SignReconstruction.PlusMinusScale)
            {
                lv = Scalars.MinusOne(lv.mul(Scalars.Two));
            }

            levels.Add(lv);
            scales.Add(Meta(qt.Scale!, pos, r0, len, g));
            if (anyZero)
            {
                zeros_.Add(qt.Zero is null ? zeros_like(scales[^1]) : Meta(qt.Zero, pos, r0, len, g));
            }
        }

        Tensor Join(List<Tensor> t) => t.Count == 1 ? t[0] : cat(t, -1);
        return (Join(levels), Join(scales), anyZero ? Join(zeros_) : null);
    }

    /// <summary>Per-channel metadata [B, H, N/G, 1, C] of rows r0..r0+len as [B, H, len/G, 1, C], or gathered per token as [B, H, len, C].</summary>
    private static Tensor Meta(Tensor meta, Tensor? pos, long r0, long len, int g)
    {
        if (pos is null)
        {
            return meta.narrow(2, r0 / g, len / g).to(ScalarType.Float32);
        }

        var flat = meta.squeeze(3); // [B, H, N/G, C]
        using var size = g.ToScalar();
        var group = pos.div(size, rounding_mode: RoundingMode.floor);
        return flat.gather(2, Expand(group, flat.shape)).to(ScalarType.Float32);
    }

    /// <summary>[B, T] positions expanded to index dimension 2 of a [B, H, *, C] tensor.</summary>
    private static Tensor Expand(Tensor pos, long[] shape)
        => pos.reshape(shape[0], 1, pos.size(1), 1).expand(shape[0], shape[1], pos.size(1), shape[3]);

    /// <summary>Weights of the stored 1-bit components such that q·(channels read back) = Σ w·component (see the CPU kernel).</summary>
    private static Tensor EasyWeights(Tensor qe, OneBitKeyMode mode)
    {
        long de = qe.size(-1);
        using var inv = (1.0 / de).ToScalar();
        switch (mode)
        {
            case OneBitKeyMode.Fft:
            {
                var spectrum = fft.fft_(qe, -1, -1);
                return view_as_real(spectrum).reshape(qe.shape[..^1].Append(2 * de).ToArray()).mul(inv);
            }

            case OneBitKeyMode.Rfft:
            {
                var spectrum = fft.rfft(qe, -1, -1);
                long bins = spectrum.size(-1);
                long imagCount = bins - 1 - (de % 2 == 0 ? 1 : 0);
                // Inner bins stand for two conjugate bins; bin 0 (and bin De/2 for even De) for one.
                var w = Enumerable.Repeat(2f, (int)bins).ToArray();
                w[0] = 1f;
                if (de % 2 == 0)
                {
                    w[^1] = 1f;
                }

                var weight = tensor(w, ScalarType.Float32, qe.device);

                var re = spectrum.real * weight;
                var im = spectrum.imag.narrow(-1, 1, imagCount).mul(Scalars.Two);
                return cat(new[] { re, im }, -1).mul(inv);
            }

            default:
                return qe;
        }
    }

    /// <summary>Running max, sum and weighted values of an online softmax, [B, H, nq].</summary>
    private sealed class SoftmaxState : IDisposable
    {
        private Tensor _max;
        private Tensor _sum;
        private Tensor? _out;
        private Tensor? _pendingCorrection;

        public SoftmaxState(long b, long h, long nq, Device device)
        {
            _max = full(new[] { b, h, nq, 1L }, Scalars.NegativeInfinity, ScalarType.Float32, device).DetachFromDisposeScope();
            _sum = zeros(new[] { b, h, nq, 1L }, ScalarType.Float32, device).DetachFromDisposeScope();
        }

        /// <summary>Takes a run's scores [B, H, nq, T]; returns its weights exp(s - max) and rescales what came before.</summary>
        public Tensor Step(Tensor scores)
        {
            var max = maximum(_max, scores.amax(new[] { -1L }, keepdim: true));
            // A row that has seen only masked positions keeps max -inf; subtract 0 there instead (its weights are 0).
            var safe = max.masked_fill(max.isinf(), Scalars.Zero);
            var correction = (_max - safe).exp();
            var p = (scores - safe).exp();
            _sum = Keep(_sum, Scalars.Add(_sum * correction, p.sum(-1, keepdim: true)));
            _max = Keep(_max, max);
            _pendingCorrection = correction;
            return p;
        }

        /// <summary>Adds a run's Σ p·v [B, H, nq, Dv] (after <see cref="Step"/>).</summary>
        public void Add(Tensor weighted)
        {
            var next = _out is null ? weighted.clone() : Scalars.Add(_out * _pendingCorrection!, weighted);
            _out = Keep(_out, next);
        }

        public Tensor Result() => _out! / _sum;

        public void Dispose()
        {
            _max.Dispose();
            _sum.Dispose();
            _out?.Dispose();
        }

        /// <summary>Keeps <paramref name="next"/> past the run's dispose scope and frees what it replaces.</summary>
        private static Tensor Keep(Tensor? old, Tensor next)
        {
            var kept = next.DetachFromDisposeScope();
            old?.Dispose();
            return kept;
        }
    }
}
