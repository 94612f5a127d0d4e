using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Decode attention on the CPU straight from a <see cref="QuantizedKVCache"/>'s packed codes. One work item per
/// (batch item, KV head) handles all the query heads of its group and all query tokens; items run in parallel.
/// Per item, tokens are visited in runs of <see cref="ChunkTokens"/> with an online softmax (one softmax over blocks
/// and residual), so the extra memory is a few rows per thread, whatever the cache length.
/// </summary>
/// <remarks>
/// Keys: per group of G tokens the query is scaled once by the group's scales (2-bit outlier channels and 1-bit
/// components alike) and the zero points become one constant; a token's score is then the dot product of its code
/// levels with that scaled query. 1-bit FFT components are scored in the frequency domain against the query's
/// transform (<see cref="EasyWeights"/>), with no inverse FFT. Values: per-channel groups accumulate
/// Σ p·level (ternary levels are ±1 or 0) and apply scale and zero point once per group; per-token values are read
/// back one row at a time.
/// </remarks>
internal sealed unsafe class CpuFusedAttention
{
    /// <summary>Tokens per softmax chunk (rounded to whole groups).</summary>
    public const int ChunkTokens = 256;

    /// <summary>cos and sin of 2π·f·j/n as [f, j] matrices (f &lt; n, j &lt; n), per transform length n.</summary>
    private static readonly ConcurrentDictionary<int, (double[] Cos, double[] Sin)> Twiddles = new();

    private readonly FusedKernelPath _path;

    /// <summary>Whether unscaled per-channel trit values are decoded a group at a time into digit planes (<see cref="TritPlanes"/>).</summary>
    private readonly bool _planar;
    private readonly int _batch, _hkv, _hq, _tq, _groups, _nq, _d, _dv, _dPad, _dvPad, _g, _chunk;
    private readonly long _n, _quantizedLength;
    private readonly float[] _query;
    private readonly float[] _result;
    private readonly long[] _limits;
    private readonly List<Block> _blocks = new();
    private readonly void* _residualKeys, _residualValues;
    private readonly ScalarType _residualKeyType, _residualValueType;
    private readonly long _residualLength;
    private readonly long _residualStride;

    internal CpuFusedAttention(QuantizedKVCache cache, Tensor query, bool causal, double scale, FusedKernelPath path)
    {
        _path = path;
        _planar = path == FusedKernelPath.Avx512 && TritPlanes.IsSupported;
        var o = cache.Options;
        _batch = (int)query.size(0);
        _hq = (int)query.size(1);
        _tq = (int)query.size(2);
        _d = (int)query.size(3);
        var (keys, values) = (cache.ResidualKeys, cache.ResidualValues);
        _n = cache.Length;
        _quantizedLength = cache.QuantizedLength;
        var shape = cache.Blocks.Count > 0 ? cache.Blocks[0].Values.Shape : values!.shape;
        _hkv = (int)shape[1];
        _dv = (int)shape[3];
        _groups = _hq / _hkv;
        _nq = _groups * _tq;
        _dPad = SimdKernels.Pad(_d);
        _dvPad = SimdKernels.Pad(_dv);
        _g = o.GroupSize;
        _chunk = Math.Max(1, ChunkTokens / _g) * _g;

        using (var q = query.to(ScalarType.Float32).contiguous())
        {
            _query = q.data<float>().ToArray();
        }

        float factor = (float)scale;
        for (int i = 0; i < _query.Length; i++)
        {
            _query[i] *= factor;
        }

        _limits = new long[_nq];
        for (int qi = 0; qi < _nq; qi++)
        {
            _limits[qi] = causal ? _n - _tq + (qi % _tq) : long.MaxValue;
        }

        _result = new float[_batch * _hq * _tq * _dv];
        foreach (var b in cache.Blocks)
        {
            _blocks.Add(new Block(b, o));
        }

        if (keys is not null && values is not null && keys.size(2) > 0)
        {
            // The residual, or the buffers it is a view of (heads ResidualStride tokens apart).
            var storage = cache.ResidualStorage;
            _residualLength = keys.size(2);
            _residualStride = cache.ResidualStride;
            _residualKeys = PackedSource.Pointer(storage.Keys!);
            _residualValues = PackedSource.Pointer(storage.Values!);
            _residualKeyType = keys.dtype;
            _residualValueType = values.dtype;
        }
    }

    /// <summary>Attends; query [B, Hq, Tq, D] on the CPU, the cache on the CPU. Returns float32 [B, Hq, Tq, Dv].</summary>
    public static Tensor Attend(QuantizedKVCache cache, Tensor query, bool causal, double scale, FusedKernelPath path)
    {
        var run = new CpuFusedAttention(cache, query, causal, scale, SimdKernels.Resolve(path));
        int items = run._batch * run._hkv;
        if (items == 1)
        {
            run.RunItem(0);
        }
        else
        {
            Parallel.For(0, items, run.RunItem);
        }

        return tensor(run._result, new long[] { run._batch, run._hq, run._tq, run._dv });
    }

    /// <summary>Work items: (batch item, KV head) pairs, each run by <see cref="RunItem"/>.</summary>
    internal int Items => _batch * _hkv;

    /// <summary>The output [B, Hq, Tq, Dv] as the work items fill it.</summary>
    internal float[] Result => _result;

    /// <summary>Floats of scratch one work item uses (the extra memory per thread, besides the output).</summary>
    private int ScratchFloats(out Layout layout)
    {
        int maxRow = _dPad, tritBytes = 0;
        foreach (var b in _blocks)
        {
            maxRow = Math.Max(maxRow, b.RowLength);
            tritBytes = _planar && b.PlanarTrits ? Math.Max(tritBytes, b.RestValues.RowBytes) : tritBytes;
        }

        layout = new Layout(maxRow, _dvPad, _nq, _chunk, _dPad, _g, tritBytes);
        return layout.Total;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void RunItem(int item)
    {
        int b = item / _hkv, h = item % _hkv;
        long bh = item;
        int total = ScratchFloats(out var lay);
        // 16 floats of slack so that the scratch starts on a 64-byte boundary: a rented array's start is only 16-byte
        // aligned, and 512-bit loads and stores that straddle cache lines made whole calls about 2.5x slower.
        var rented = ArrayPool<float>.Shared.Rent(total + SimdKernels.Lanes);
        try
        {
            Array.Clear(rented, 0, total + SimdKernels.Lanes);
            fixed (float* start = rented)
            {
                float* mem = (float*)(((nint)start + 63) & ~(nint)63);
                var s = new State(mem, lay, _nq);
                for (int gi = 0; gi < _groups; gi++)
                {
                    for (int ti = 0; ti < _tq; ti++)
                    {
                        int qi = (gi * _tq) + ti;
                        long src = ((((long)b * _hq) + (h * _groups) + gi) * _tq + ti) * _d;
                        new ReadOnlySpan<float>(_query, (int)src, _d).CopyTo(new Span<float>(s.Q + (qi * _dPad), _d));
                        s.M[qi] = float.NegativeInfinity;
                    }
                }

                foreach (var block in _blocks)
                {
                    RunBlock(block, b, bh, s);
                }

                RunResidual(bh, s);
                for (int gi = 0; gi < _groups; gi++)
                {
                    for (int ti = 0; ti < _tq; ti++)
                    {
                        int qi = (gi * _tq) + ti;
                        long dst = ((((long)b * _hq) + (h * _groups) + gi) * _tq + ti) * _dv;
                        float inv = 1f / s.L[qi];
                        float* o = s.Out + (qi * _dvPad);
                        if (lay.TritBytes > 0)
                        {
                            // Channel d's planar sum is at slot (d mod 5)·S + d / 5 of the digit-major row.
                            float* planar = s.OutPlanar + (qi * lay.PlanarRow);
                            int slots = TritPlanes.DigitSlots(lay.TritBytes);
                            for (int d = 0; d < _dv; d++)
                            {
                                o[d] += planar[((d % 5) * slots) + (d / 5)];
                            }
                        }

                        for (int d = 0; d < _dv; d++)
                        {
                            _result[dst + d] = o[d] * inv;
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlock(Block blk, int b, long bh, State s)
    {
        int rowLen = blk.RowLength, oStride = blk.OutlierStride;
        int dOut = blk.OutlierIndex.Length, dEasy = blk.EasyIndex.Length;

        // The query in the block's channel order: outlier channels, then the 1-bit components' weights.
        new Span<float>(s.Qb, _nq * s.Lay.Row).Clear();
        new Span<float>(s.S, s.Lay.Row).Clear();
        new Span<float>(s.Z, s.Lay.Row).Clear();
        var easy = new double[dEasy];
        for (int qi = 0; qi < _nq; qi++)
        {
            float* q = s.Q + (qi * _dPad), qb = s.Qb + (qi * s.Lay.Row);
            for (int i = 0; i < dOut; i++)
            {
                qb[i] = q[blk.OutlierIndex[i]];
            }

            if (dEasy > 0)
            {
                for (int i = 0; i < dEasy; i++)
                {
                    easy[i] = q[blk.EasyIndex[i]];
                }

                EasyWeights(easy, blk.Mode, qb + oStride);
            }
        }

        long* protectedPositions = blk.ProtectedTokens == null ? null : blk.ProtectedTokens + (b * blk.ProtectedCount);
        long jp = 0, rp = 0;
        bool codeScores = _path == FusedKernelPath.Avx512 && _nq == 7 && _g == 32 && blk.CodeScores;
        var rest = new GroupAccumulator(s.AccRest, s.PsumRest);
        var prot = new GroupAccumulator(s.AccProt, s.PsumProt);
        for (long c0 = 0; c0 < blk.Tokens; c0 += _chunk)
        {
            int len = (int)Math.Min(_chunk, blk.Tokens - c0);
            for (long g0 = c0; g0 < c0 + len; g0 += _g)
            {
                long group = g0 / _g;
                blk.KeyOutliers?.ChannelGroupMeta(bh, group, s.S, s.Z);
                blk.KeyEasy?.ChannelGroupMeta(bh, group, s.S + oStride, s.Z + oStride);
                bool zeros = blk.KeyOutliers?.Zero != null || blk.KeyEasy?.Zero != null;
                SimdKernels.ScaleRows(s.Qs, s.Qb, s.Lay.Row, _nq, s.S, zeros ? s.Z : null, s.Const, rowLen, _path);

                // The group's key rows are unpacked first and scored afterwards, so the scoring loads do not wait on the
                // unpacking stores still in flight.
                if (codeScores)
                {
                    // Seven query rows, groups of 32: scored straight from the packed codes.
                    PackedSource? a = blk.KeyOutliers, e = blk.KeyEasy;
                    SimdKernels.ScoresFromCodes7(
                        a is null ? null : a.Row(bh, g0), a?.RowBytes ?? 0, a?.Count ?? 0, a?.Bits ?? 0, a is null ? null : a.Levels, 0,
                        e is null ? null : e.Row(bh, g0), e?.RowBytes ?? 0, e?.Count ?? 0, e?.Bits ?? 0, e is null ? null : e.Levels, oStride,
                        s.Qs, s.Lay.Row, s.Const, s.Scores + (g0 - c0), _chunk);
                    continue;
                }

                blk.KeyOutliers?.UnpackRows(bh, g0, _g, s.Keys, rowLen, _path);
                blk.KeyEasy?.UnpackRows(bh, g0, _g, s.Keys + oStride, rowLen, _path);

                SimdKernels.Scores(s.Keys, rowLen, _g, s.Qs, s.Lay.Row, _nq, rowLen, s.Const, s.Scores + (g0 - c0), _chunk, _path);
            }

            Softmax(s, blk.Start + c0, len);

            if (_planar && blk.PlanarTrits)
            {
                AccumulatePlanarGroups(blk.RestValues, bh, c0, len, s);
                continue;
            }

            if (blk.ProtectedValues is null && blk.RestValues.Axis == QuantizationAxis.PerChannel)
            {
                AccumulateGroups(blk.RestValues, bh, c0, len, rest, s);
                continue;
            }

            for (int t = 0; t < len; t++)
            {
                long pos = c0 + t;
                if (protectedPositions != null && jp < blk.ProtectedCount && protectedPositions[jp] == pos)
                {
                    AccumulateValue(blk.ProtectedValues!, bh, jp++, t, prot, s);
                }
                else
                {
                    AccumulateValue(blk.RestValues, bh, rp++, t, rest, s);
                }
            }

            Fold(blk.RestValues, bh, rest, s);
            if (blk.ProtectedValues is not null)
            {
                Fold(blk.ProtectedValues, bh, prot, s);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunResidual(long bh, State s)
    {
        long r = _residualLength;
        for (long c0 = 0; c0 < r; c0 += _chunk)
        {
            int len = (int)Math.Min(_chunk, r - c0);
            for (int t = 0; t < len; t++)
            {
                CodeTables.ReadRow(_residualKeys, _residualKeyType, ((bh * _residualStride) + c0 + t) * _d, _d, s.Row);
                for (int qi = 0; qi < _nq; qi++)
                {
                    s.Scores[(qi * _chunk) + t] = SimdKernels.DotPadded(s.Row, s.Q + (qi * _dPad), _dPad, _path);
                }
            }

            Softmax(s, _quantizedLength + c0, len);
            for (int t = 0; t < len; t++)
            {
                CodeTables.ReadRow(_residualValues, _residualValueType, ((bh * _residualStride) + c0 + t) * _dv, _dv, s.VRow);
                for (int qi = 0; qi < _nq; qi++)
                {
                    float p = s.Scores[(qi * _chunk) + t];
                    if (p != 0f)
                    {
                        SimdKernels.AxpyPadded(s.Out + (qi * _dvPad), p, s.VRow, _dvPad, _path);
                    }
                }
            }
        }
    }

    /// <summary>Masks (causal), then the online-softmax step: rescales what was accumulated and turns scores into weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Softmax(State s, long absoluteStart, int len)
    {
        for (int qi = 0; qi < _nq; qi++)
        {
            float* sc = s.Scores + (qi * _chunk);
            long limit = _limits[qi];
            if (absoluteStart + len - 1 > limit)
            {
                for (int t = 0; t < len; t++)
                {
                    if (absoluteStart + t > limit)
                    {
                        sc[t] = float.MinValue;
                    }
                }
            }

            float m = Math.Max(s.M[qi], SimdKernels.Max(sc, len, _path));
            float correction = MathF.Exp(s.M[qi] - m);
            if (correction != 1f)
            {
                SimdKernels.ScalePadded(s.Out + (qi * _dvPad), correction, _dvPad, _path);
                if (s.Lay.TritBytes > 0)
                {
                    SimdKernels.ScalePadded(s.OutPlanar + (qi * s.Lay.PlanarRow), correction, s.Lay.PlanarRow, _path);
                }

                s.L[qi] *= correction;
            }

            s.L[qi] += SimdKernels.ExpSum(sc, len, m, _path);
            s.M[qi] = m;
        }
    }

    /// <summary>
    /// Unscaled per-channel trit values with no protected tokens: each group's packed rows (contiguous) are decoded at once
    /// into five digit planes, and every token's levels are written digit-major (slot k·S + i holds channel 5i + k), so
    /// that Σ p·level accumulates straight into the digit-major output (no scale, no zero point, nothing to fold).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AccumulatePlanarGroups(PackedSource src, long bh, long c0, int len, State s)
    {
        int rowBytes = src.RowBytes, planeStride = TritPlanes.PlaneStride(rowBytes, _g), row = TritPlanes.RowFloats(rowBytes);
        for (int g = 0; g < len; g += _g)
        {
            TritPlanes.Decode(src.Row(bh, c0 + g), _g * rowBytes, (sbyte*)s.Planes, planeStride);
            if (_nq == 7)
            {
                // Seven query rows: the levels are converted in registers as they are weighted.
                SimdKernels.AccumulatePlanes7(s.OutPlanar, row, s.Scores + g, _chunk, (sbyte*)s.Planes, planeStride, rowBytes, _g);
                continue;
            }

            TritPlanes.Levels((sbyte*)s.Planes, planeStride, rowBytes, _g, s.Values, row);
            SimdKernels.AccumulateRows(s.OutPlanar, row, s.Scores + g, _chunk, _nq, s.Values, row, _g, row, s.ZeroWeights, s.Sink, _path);
        }
    }

    /// <summary>
    /// Per-channel values with no protected tokens: token t of the block is value row t, so whole groups are unpacked
    /// at once and accumulated as a [rows × G] by [G × Dv] product, then folded.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AccumulateGroups(PackedSource src, long bh, long c0, int len, GroupAccumulator acc, State s)
    {
        for (int g = 0; g < len; g += _g)
        {
            for (int t = 0; t < _g; t++)
            {
                src.Unpack(bh, c0 + g + t, s.Values + (t * _dvPad), _path);
            }

            float* p = s.Scores + g;
            SimdKernels.AccumulateRows(acc.Sums, _dvPad, p, _chunk, _nq, s.Values, _dvPad, _g, _dvPad, s.ZeroWeights, s.Sink, _path);
            if (src.Zero != null)
            {
                for (int qi = 0; qi < _nq; qi++)
                {
                    float w = 0;
                    for (int t = 0; t < _g; t++)
                    {
                        w += p[(qi * _chunk) + t];
                    }

                    acc.Weights[qi] += w;
                }
            }

            acc.Group = (c0 + g) / _g;
            Fold(src, bh, acc, s);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AccumulateValue(PackedSource src, long bh, long index, int col, GroupAccumulator acc, State s)
    {
        if (src.Axis == QuantizationAxis.PerChannel)
        {
            long group = index / _g;
            if (group != acc.Group)
            {
                Fold(src, bh, acc, s);
                acc.Group = group;
            }

            src.Unpack(bh, index, s.VRow, _path);
            for (int qi = 0; qi < _nq; qi++)
            {
                float p = s.Scores[(qi * _chunk) + col];
                if (p != 0f)
                {
                    SimdKernels.AxpyPadded(acc.Sums + (qi * _dvPad), p, s.VRow, _dvPad, _path);
                    acc.Weights[qi] += p;
                }
            }

            return;
        }

        src.Unpack(bh, index, s.VRow, _path);
        src.DequantizeTokenRow(bh, index, s.VRow);
        for (int qi = 0; qi < _nq; qi++)
        {
            float p = s.Scores[(qi * _chunk) + col];
            if (p != 0f)
            {
                SimdKernels.AxpyPadded(s.Out + (qi * _dvPad), p, s.VRow, _dvPad, _path);
            }
        }
    }

    /// <summary>out += s ⊙ Σ p·level + mn·Σ p for the per-channel group being accumulated; clears the accumulator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Fold(PackedSource src, long bh, GroupAccumulator acc, State s)
    {
        if (acc.Group < 0)
        {
            return;
        }

        src.ChannelGroupMeta(bh, acc.Group, s.VS, s.VZ);
        for (int qi = 0; qi < _nq; qi++)
        {
            float* sums = acc.Sums + (qi * _dvPad), o = s.Out + (qi * _dvPad);
            if (src.Scale != null)
            {
                SimdKernels.FmaPadded(o, s.VS, sums, _dvPad, _path);
            }
            else
            {
                SimdKernels.AxpyPadded(o, 1f, sums, _dvPad, _path);
            }

            if (src.Zero != null && acc.Weights[qi] != 0f)
            {
                SimdKernels.AxpyPadded(o, acc.Weights[qi], s.VZ, _dvPad, _path);
            }

            new Span<float>(sums, _dvPad).Clear();
            acc.Weights[qi] = 0f;
        }

        acc.Group = -1;
    }

    /// <summary>
    /// Weights w over the stored 1-bit components such that q·(easy channels read back) = Σ w_c·component_c: the
    /// adjoint of the inverse transform, i.e. the query's DFT (computed once per block and step, in double).
    /// FFT: components are (Re X_f, Im X_f) pairs and q·Re(IFFT(X)) = (1/De) Σ_f Re X_f Re Q_f + Im X_f Im Q_f with
    /// Q = FFT(q). Real FFT: bins 0..De/2 then imaginary parts 1..; inner bins count twice (Hermitian symmetry).
    /// </summary>
    internal static void EasyWeights(double[] q, OneBitKeyMode mode, float* w)
    {
        int de = q.Length;
        if (mode == OneBitKeyMode.TimeDomain)
        {
            for (int i = 0; i < de; i++)
            {
                w[i] = (float)q[i];
            }

            return;
        }

        int bins = mode == OneBitKeyMode.Fft ? de : (de / 2) + 1;
        int imagCount = bins - 1 - (de % 2 == 0 ? 1 : 0);
        var (cos, sin) = Twiddles.GetOrAdd(de, n => (
            Enumerable.Range(0, n * n).Select(i => Math.Cos(2 * Math.PI * ((i / n) * (i % n) % n) / n)).ToArray(),
            Enumerable.Range(0, n * n).Select(i => Math.Sin(2 * Math.PI * ((i / n) * (i % n) % n) / n)).ToArray()));
        for (int f = 0; f < bins; f++)
        {
            double re = 0, im = 0;
            var cf = new ReadOnlySpan<double>(cos, f * de, de);
            var sf = new ReadOnlySpan<double>(sin, f * de, de);
            for (int j = 0; j < de; j++)
            {
                re += q[j] * cf[j];
                im -= q[j] * sf[j];
            }

            if (mode == OneBitKeyMode.Fft)
            {
                w[2 * f] = (float)(re / de);
                w[(2 * f) + 1] = (float)(im / de);
                continue;
            }

            bool selfConjugate = f == 0 || (de % 2 == 0 && f == de / 2);
            w[f] = (float)((selfConjugate ? 1 : 2) * re / de);
            if (f >= 1 && f <= imagCount)
            {
                w[bins + f - 1] = (float)(2 * im / de);
            }
        }
    }

    /// <summary>One block's sources and channel split.</summary>
    private sealed class Block
    {
        public Block(QuantizedBlock b, KVCacheOptions o)
        {
            Start = b.Start;
            Tokens = b.Tokens;
            Mode = o.OneBitKeys;
            OutlierIndex = b.Keys.OutlierChannels.data<long>().ToArray().Select(i => (int)i).ToArray();
            EasyIndex = b.Keys.EasyChannels.data<long>().ToArray().Select(i => (int)i).ToArray();
            KeyOutliers = PackedSource.Asymmetric(b.Keys.Outliers, QuantizationAxis.PerChannel, o.GroupSize);
            KeyEasy = PackedSource.Sign(b.Keys.Easy, o.SignReconstruction, o.GroupSize);
            OutlierStride = SimdKernels.Pad(OutlierIndex.Length);
            int components = KeyEasy?.Count ?? 0;
            RowLength = OutlierStride + SimdKernels.Pad(components);
            var v = b.Values;
            RestValues = o.Values == ValueQuantization.Asymmetric
                ? PackedSource.Asymmetric(v.Rest, o.ValueAxis, o.GroupSize)!
                : PackedSource.Ternary(v.Rest, o.ScaledTernary, o.ValueAxis, o.GroupSize);
            if (v.ProtectedTokens is not null)
            {
                ProtectedValues = PackedSource.Asymmetric(v.Protected, o.ValueAxis, o.GroupSize);
                ProtectedTokens = (long*)PackedSource.Pointer(v.ProtectedTokens);
                ProtectedCount = v.ProtectedTokens.size(1);
            }

            CodeScores = (KeyOutliers is not null || KeyEasy is not null)
                && (KeyOutliers is null || SimdKernels.ScoresFromCodesFit(KeyOutliers.Bits, KeyOutliers.RowBytes))
                && (KeyEasy is null || SimdKernels.ScoresFromCodesFit(KeyEasy.Bits, KeyEasy.RowBytes));
            PlanarTrits = ProtectedValues is null && RestValues.Axis == QuantizationAxis.PerChannel && RestValues.PerByte == 5
                && RestValues.Scale == null && RestValues.Zero == null && RestValues.RowBytes <= TritPlanes.MaxRowBytes;
        }

        /// <summary>Whether every key source is 1- or 2-bit codes in rows of 4, 8 or 16 bytes (what <see cref="SimdKernels.ScoresFromCodes7"/> reads).</summary>
        public bool CodeScores { get; }

        /// <summary>Whether the values are unscaled per-channel trits without protected tokens, in rows of at most
        /// <see cref="TritPlanes.MaxRowBytes"/> bytes (what <see cref="AccumulatePlanarGroups"/> reads).</summary>
        public bool PlanarTrits { get; }

        public long Start { get; }

        public long Tokens { get; }

        public OneBitKeyMode Mode { get; }

        public int[] OutlierIndex { get; }

        public int[] EasyIndex { get; }

        public PackedSource? KeyOutliers { get; }

        public PackedSource? KeyEasy { get; }

        public int OutlierStride { get; }

        public int RowLength { get; }

        public PackedSource RestValues { get; }

        public PackedSource? ProtectedValues { get; }

        public long* ProtectedTokens { get; }

        public long ProtectedCount { get; }
    }

    /// <summary>Sizes of one work item's scratch buffers, in floats.</summary>
    private readonly record struct Layout(int Row, int VRow, int Nq, int Chunk, int DPad, int Group, int TritBytes)
    {
        /// <summary>Floats of a digit-major value row of <see cref="TritBytes"/> packed bytes, 0 without planar values.</summary>
        public int PlanarRow => TritBytes == 0 ? 0 : TritPlanes.RowFloats(TritBytes);

        /// <summary>Bytes between digit planes, 0 without planar values.</summary>
        public int PlaneStride => TritBytes == 0 ? 0 : TritPlanes.PlaneStride(TritBytes, Group);

        /// <summary>Widest value row the value buffers hold.</summary>
        public int ValueRow => Math.Max(VRow, PlanarRow);

        public int RowBuffer => Row + SimdKernels.Lanes + CodeTables.Overrun;

        public int VRowBuffer => VRow + SimdKernels.Lanes + CodeTables.Overrun;

        /// <summary>One group's unpacked key rows (and the slack of the last unpack).</summary>
        public int KeysBuffer => (Group * Row) + SimdKernels.Lanes + CodeTables.Overrun;

        /// <summary>One group's unpacked value rows.</summary>
        public int ValuesBuffer => (Group * ValueRow) + SimdKernels.Lanes + CodeTables.Overrun;

        /// <summary>All buffers, each rounded up to whole 512-bit vectors.</summary>
        public int Total => (Nq * DPad) + (2 * Nq * Row) + (3 * Row) + SimdKernels.Pad(RowBuffer) + (Nq * Chunk) + (3 * Nq * VRow) + SimdKernels.Pad(VRowBuffer)
            + (2 * VRow) + (5 * SimdKernels.Pad(Nq)) + SimdKernels.Pad(KeysBuffer) + SimdKernels.Pad(ValuesBuffer) + SimdKernels.Pad(Group) + ValueRow
            + (Nq * PlanarRow) + SimdKernels.Pad(5 * PlaneStride / sizeof(float));
    }

    /// <summary>Pointers into one work item's scratch memory.</summary>
    private sealed class State
    {
        public State(float* mem, Layout lay, int nq)
        {
            Lay = lay;
            float* p = mem;
            // Every buffer starts on a 64-byte boundary (the scratch itself does).
            float* Take(int n)
            {
                float* r = p;
                p += SimdKernels.Pad(n);
                return r;
            }

            Q = Take(nq * lay.DPad);
            Qb = Take(nq * lay.Row);
            Qs = Take(nq * lay.Row);
            S = Take(lay.Row);
            Z = Take(lay.Row);
            Take(lay.Row);
            Row = Take(lay.RowBuffer);
            Scores = Take(nq * lay.Chunk);
            Out = Take(nq * lay.VRow);
            AccRest = Take(nq * lay.VRow);
            AccProt = Take(nq * lay.VRow);
            VRow = Take(lay.VRowBuffer);
            VS = Take(lay.VRow);
            VZ = Take(lay.VRow);
            M = Take(nq);
            L = Take(nq);
            Const = Take(nq);
            PsumRest = Take(nq);
            PsumProt = Take(nq);
            Keys = Take(lay.KeysBuffer);
            Values = Take(lay.ValuesBuffer);
            ZeroWeights = Take(lay.Group);
            Sink = Take(lay.ValueRow);
            OutPlanar = Take(nq * lay.PlanarRow);
            Planes = Take(5 * lay.PlaneStride / sizeof(float));
        }

        /// <summary>Σ p·level of planar trit values per query row, digit-major ([Nq, PlanarRow]).</summary>
        public float* OutPlanar { get; }

        /// <summary>Five digit planes of one group's trit values (signed levels), <see cref="Layout.PlaneStride"/> bytes apart.</summary>
        public float* Planes { get; }

        /// <summary>One group's unpacked key rows, [G, row length].</summary>
        public float* Keys { get; }

        /// <summary>One group's unpacked value rows, [G, padded Dv].</summary>
        public float* Values { get; }

        /// <summary>G zero weights (the missing rows of a last 4-row tile).</summary>
        public float* ZeroWeights { get; }

        /// <summary>Scratch output of the missing rows of a last 4-row tile.</summary>
        public float* Sink { get; }

        public Layout Lay { get; }

        public float* Q { get; }

        public float* Qb { get; }

        public float* Qs { get; }

        public float* S { get; }

        public float* Z { get; }

        public float* Row { get; }

        public float* Scores { get; }

        public float* Out { get; }

        public float* AccRest { get; }

        public float* AccProt { get; }

        public float* VRow { get; }

        public float* VS { get; }

        public float* VZ { get; }

        public float* M { get; }

        public float* L { get; }

        public float* Const { get; }

        public float* PsumRest { get; }

        public float* PsumProt { get; }
    }

    /// <summary>Σ p·level per query row for the per-channel value group being read, and Σ p.</summary>
    private sealed class GroupAccumulator
    {
        public GroupAccumulator(float* sums, float* weights)
        {
            Sums = sums;
            Weights = weights;
        }

        public float* Sums { get; }

        public float* Weights { get; }

        public long Group { get; set; } = -1;
    }
}
