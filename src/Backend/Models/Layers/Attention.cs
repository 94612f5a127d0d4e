using TorchSharp;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// Multi-head self-attention with optional grouped-query heads, projection biases and rotary positions, whose keys and values
/// can live in a <see cref="VidKV.AI.Quantization.Cache.QuantizedKVCache"/>. One module for decoders (causal, RoPE, cache) and
/// CLIP-style vision towers (full attention, no positions).
/// </summary>
internal sealed class Attention : nn.Module
{
    private readonly LinearLayer q_proj;
    private readonly LinearLayer k_proj;
    private readonly LinearLayer v_proj;
    private readonly LinearLayer o_proj;
    private readonly int _heads, _kvHeads, _headDim;
    private readonly FusedProjection _qkv; // q, k and v as one projection, made when the CUDA layer kernels first serve this module

    public Attention(AttentionConfig c, ScalarType dtype, Device device)
        : base(nameof(Attention))
    {
        (_heads, _kvHeads, _headDim) = (c.NumHeads, c.NumKeyValueHeads, c.HeadDim);
        q_proj = new LinearLayer(c.HiddenSize, c.NumHeads * c.HeadDim, c.QkvBias, dtype, device);
        k_proj = new LinearLayer(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, c.QkvBias, dtype, device);
        v_proj = new LinearLayer(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, c.QkvBias, dtype, device);
        o_proj = new LinearLayer(c.NumHeads * c.HeadDim, c.HiddenSize, c.OutputBias, dtype, device);
        register_module(nameof(q_proj), q_proj);
        register_module(nameof(k_proj), k_proj);
        register_module(nameof(v_proj), v_proj);
        register_module(c.OutputName, o_proj);
        _qkv = new FusedProjection(q_proj, k_proj, v_proj);
    }

    /// <summary>
    /// <see cref="AttentionInput.Hidden"/> [B, T, D] at consecutive positions. Without a cache: attention over the input alone.
    /// With an empty cache: the same (prefill attention uses the exact keys and values), then the cache is filled. Otherwise
    /// the new keys and values are appended and the queries attend over the whole cache.
    /// </summary>
    public Tensor forward(AttentionInput input)
    {
        using var scope = NewDisposeScope();
        return o_proj.forward(Attend(input, input.Hook is null && UsesLayerKernels(input.Hidden))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="residual"/> + <see cref="forward"/>(<paramref name="input"/>): with the CUDA layer kernels and no output
    /// bias the add is folded into the output projection (one matrix product with the residual as its addend).
    /// </summary>
    public Tensor ForwardAddTo(Tensor residual, AttentionInput input)
    {
        using var scope = NewDisposeScope();
        bool fast = input.Hook is null && UsesLayerKernels(input.Hidden);
        var attended = Attend(input, fast);
        return (fast && o_proj.Bias is null ? AddProjected(residual, attended, o_proj.Weight) : Scalars.Add(residual, o_proj.forward(attended)))
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// residual + x Wᵀ as one matrix product (residual [..., O], x [..., I], W [O, I]): a linear layer of two-dimensional
    /// input whose "bias" is the residual is one addmm in libtorch (with three-dimensional input it is a product and an add).
    /// </summary>
    internal static Tensor AddProjected(Tensor residual, Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var sum = nn.functional.linear(x.reshape(-1, x.size(-1)), weight, residual.reshape(-1, residual.size(-1)));
        return sum.view(residual.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The attention of <paramref name="input"/> before the output projection: [B, T, H · hd]; <paramref name="fast"/>: through
    /// the fused projection and the layer kernels (<see cref="UsesLayerKernels"/> said so).
    /// </summary>
    private Tensor Attend(AttentionInput input, bool fast)
    {
        var x = input.Hidden;
        long b = x.size(0), t = x.size(1);
        Tensor Heads(Tensor y, int heads) => y.view(b, t, heads, _headDim).transpose(1, 2);
        Tensor Rotate(Tensor y) => input.Rotary is { } r ? RotaryEmbedding.Apply(y, r) : y;
        Tensor q, k, v;
        if (fast)
        {
            (q, k, v) = ProjectFused(x, input.Rotary, rowWise: false);
        }
        else
        {
            q = Rotate(Heads(q_proj.forward(x), _heads));    // [B, H, T, hd]
            k = Rotate(Heads(k_proj.forward(x), _kvHeads));  // [B, Hkv, T, hd]
            v = Heads(v_proj.forward(x), _kvHeads);          // [B, Hkv, T, hd]
        }

        var profile = StepProfile.Current;
        profile?.Mark("q, k, v projections and rotary");
        bool causal = input.Causal && t > 1;
        Tensor Attend(Tensor keys, Tensor values) => GroupedAttention(q, keys, values, causal);

        var cache = input.Cache;
        Tensor output;
        if (input.Hook?.ReplaceKeyValues(input.Layer, k, v) is { } replaced)
        {
            if (cache is not null)
            {
                throw new ArgumentException("A hook that replaces keys and values is for attention without a cache.", nameof(input));
            }

            if (replaced.QueryMask is { } m && (m.dtype != ScalarType.Bool || m.dim() != 2 || m.size(0) != b || m.size(1) != t))
            {
                throw new ArgumentException($"KeyValueReplacement.QueryMask must be bool [{b}, {t}]; got {m.dtype} [{string.Join(", ", m.shape)}].", nameof(input));
            }

            // Every query reads the replaced keys and values, or only the rows marked in QueryMask [B, T].
            output = replaced.QueryMask is not { } mask
                ? Attend(replaced.Keys, replaced.Values)
                : where(mask.view(b, 1, t, 1), Attend(replaced.Keys, replaced.Values), Attend(k, v));
        }
        else if (cache is null || cache.Length == 0)
        {
            output = Attend(k, v);
            cache?.Prefill(k, v, input.Importance);
        }
        else
        {
            if (fast && b * t == 1 && k.dtype is ScalarType.BFloat16 or ScalarType.Float16)
            {
                // In place into residual buffers with room up to the next flush: one launch, no concatenation. (16-bit
                // keys only for now: a float32 layer-check once measured 1.7e-3 relative from Append; cuda-check has since
                // found float32 in-place appends and the attention over them bit for bit Append's, and layer-check's float32
                // rows vary from process to process by up to 8e-4 without them (docs/bench-attention-copytable-h100.md).
                // Float32 joins once that variation is located.)
                VidKV.AI.Quantization.Cache.QuantizedKVCache.AppendDecodeStep([cache], k, v);
            }
            else
            {
                cache.Append(k, v);
            }

            profile?.Mark("cache append");
            output = cache.AttendForDecode(q, causal: true);
            output = output.dtype == x.dtype ? output : output.to(x.dtype);
            profile?.Mark("attention");
        }

        return output.transpose(1, 2).reshape(b, t, _heads * _headDim);
    }

    /// <summary>
    /// Whether the CUDA layer kernels serve <paramref name="x"/> (see <see cref="LayerKernels"/>); the first time they do,
    /// q_proj, k_proj and v_proj are fused into one projection.
    /// </summary>
    private bool UsesLayerKernels(Tensor x)
    {
        if (!LayerKernels.Applies(x, q_proj.Weight))
        {
            return false;
        }

        _qkv.Ensure();
        return true;
    }

    /// <summary>
    /// q [B, H, T, hd], k and v [B, Hkv, T, hd] from the fused projection of x [B, T, D] (once per row when
    /// <paramref name="rowWise"/>), q and k rotated in place by one kernel: views of one tensor, contiguous where a decode
    /// step of one sequence reads them.
    /// </summary>
    private (Tensor Q, Tensor K, Tensor V) ProjectFused(Tensor x, RotaryTables? rotary, bool rowWise)
    {
        long b = x.size(0), t = x.size(1);
        // Two-dimensional rows: libtorch's linear with a bias is then one addmm (a product and an add otherwise).
        var rows = x.reshape(b * t, x.size(2));
        var qkv = rowWise ? PerRow(rows, _qkv.Forward) : _qkv.Forward(rows); // [B·T, (H + 2 Hkv) hd]
        if (rotary is not null)
        {
            LayerKernels.RotaryInPlace(qkv, t, _heads + _kvHeads, _headDim, rotary);
        }

        // [B, heads, T, hd] views of qkv, one call each (a step's host time is its calls).
        long width = qkv.size(1), at = qkv.storage_offset();
        Tensor Heads(int first, int count) => qkv.as_strided([b, count, t, _headDim], [t * width, _headDim, width, 1], at + (first * _headDim));
        var q = Heads(0, _heads);
        var k = Heads(_heads, _kvHeads);
        var v = Heads(_heads + _kvHeads, _kvHeads);
        return b * t == 1 ? (q, k, v) : (q.contiguous(), k.contiguous(), t == 1 ? v.contiguous() : v);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _qkv.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// One decode step for N sequences at once: <paramref name="hidden"/> [N, 1, D] holds each sequence's new token, and
    /// <paramref name="caches"/>[i] is sequence i's (prefilled) cache. The projections run batched over the N rows; the new
    /// keys and values go into every sequence's cache at once
    /// (<see cref="VidKV.AI.Quantization.Cache.QuantizedKVCache.AppendDecodeStep"/>), then one batched attention call reads all N caches
    /// (<see cref="VidKV.AI.Quantization.Cache.QuantizedKVCache.AttendForDecode(IReadOnlyList{VidKV.AI.Quantization.Cache.QuantizedKVCache}, Tensor, bool, bool)"/>),
    /// so caches of different lengths and presets mix.
    /// </summary>
    /// <param name="hidden">Input [N, 1, D].</param>
    /// <param name="rotary">Rotary tables with cos and sin [N, 1, 1, hd]: row i at sequence i's position.</param>
    /// <param name="caches">N non-empty caches, one per row.</param>
    /// <param name="rowWise">Run each projection once per row (bitwise what a one-sequence step computes: BLAS gives other
    /// last bits for a matrix of N rows than for one row), rather than once over the N rows.</param>
    /// <param name="residual">When given, returned plus the output (the add folded into the output projection where the CUDA
    /// layer kernels serve the step).</param>
    public Tensor ForwardDecodeBatch(Tensor hidden, RotaryTables rotary, IReadOnlyList<VidKV.AI.Quantization.Cache.QuantizedKVCache> caches, bool rowWise, Tensor? residual = null)
    {
        using var scope = NewDisposeScope();
        var profile = StepProfile.Current;
        profile?.Mark("norms, residual adds, embedding (between layers)");
        long n = hidden.size(0);
        Tensor Heads(Tensor y, int heads) => y.view(n, 1, heads, _headDim).transpose(1, 2);
        Tensor Project(LinearLayer p, Tensor y) => rowWise ? PerRow(y, p.forward) : p.forward(y);
        Tensor q, k, v;
        bool fast = UsesLayerKernels(hidden);
        if (fast)
        {
            (q, k, v) = ProjectFused(hidden, rotary, rowWise);
        }
        else
        {
            q = RotaryEmbedding.Apply(Heads(Project(q_proj, hidden), _heads), rotary);    // [N, H, 1, hd]
            k = RotaryEmbedding.Apply(Heads(Project(k_proj, hidden), _kvHeads), rotary);  // [N, Hkv, 1, hd]
            v = Heads(Project(v_proj, hidden), _kvHeads);                                  // [N, Hkv, 1, hd]
        }

        profile?.Mark("q, k, v projections and rotary");
        VidKV.AI.Quantization.Cache.QuantizedKVCache.AppendDecodeStep(caches, k, v); // each row in place: one launch on CUDA
        profile?.Mark("cache appends");

        // One attention call over the N caches of different lengths: one kernel launch per layer on CUDA (the caches that
        // fit it), one parallel loop over every sequence's KV heads on the CPU; row i is what sequence i alone gives, bit
        // for bit when rowWise (on CUDA each cache's tokens are then split as in a one-sequence step).
        var output = PerSequenceAttention
            ? cat(Enumerable.Range(0, (int)n).Select(i => caches[i].AttendForDecode(q.narrow(0, i, 1), causal: true)).ToArray(), 0).to(hidden.dtype)
            : VidKV.AI.Quantization.Cache.QuantizedKVCache.AttendForDecode(caches, q, causal: true, matchSingleCalls: rowWise).to(hidden.dtype); // [N, H, 1, hd]
        profile?.Mark("attention");
        var attended = output.transpose(1, 2).reshape(n, 1, _heads * _headDim);
        var projected = residual is null ? Project(o_proj, attended)
            : fast && !rowWise && o_proj.Bias is null ? AddProjected(residual, attended, o_proj.Weight)
            : Scalars.Add(residual, Project(o_proj, attended));
        profile?.Mark("output projection");
        return projected.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// For benchmarks, on the calling thread: <see cref="ForwardDecodeBatch"/> attends with one call per sequence (as before
    /// the batched call existed), to compare the two in one process.
    /// </summary>
    [field: ThreadStatic]
    internal static bool PerSequenceAttention { get; set; }

    /// <summary>
    /// Scaled dot-product attention of queries [B, H, T, hd] over keys and values [B, H_kv, N, hd] with H a multiple of
    /// H_kv (grouped-query attention): each key-value head serves its group of query heads as a broadcast view (stride 0
    /// over the group), so keys and values are never copied per query head.
    /// </summary>
    internal static Tensor GroupedAttention(Tensor q, Tensor keys, Tensor values, bool causal)
    {
        if (CpuPrefillAttention.Applies(q, keys))
        {
            return CpuPrefillAttention.Attend(q, keys, values, causal);
        }

        long heads = q.size(1), kvHeads = keys.size(1);
        if (kvHeads == heads)
        {
            return nn.functional.scaled_dot_product_attention(q, keys, values, null, 0.0, causal);
        }

        long groups = heads / kvHeads, b = q.size(0), n = keys.size(2);
        Tensor Group(Tensor y, long head) => y.narrow(1, head, 1).expand(b, groups, n, y.size(3));
        if (kvHeads == 1)
        {
            return nn.functional.scaled_dot_product_attention(q, Group(keys, 0), Group(values, 0), null, 0.0, causal);
        }

        using var scope = NewDisposeScope();
        var outputs = new Tensor[kvHeads];
        for (long j = 0; j < kvHeads; j++)
        {
            outputs[j] = nn.functional.scaled_dot_product_attention(q.narrow(1, j * groups, groups), Group(keys, j), Group(values, j), null, 0.0, causal);
        }

        return cat(outputs, 1).MoveToOuterDisposeScope();
    }

    /// <summary><paramref name="f"/> applied to each row of x [N, ...] alone (a fresh contiguous copy, as a one-row input is), stacked.</summary>
    internal static Tensor PerRow(Tensor x, Func<Tensor, Tensor> f)
    {
        using var scope = NewDisposeScope();
        var rows = new Tensor[x.size(0)];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = f(x.narrow(0, i, 1).clone());
        }

        return cat(rows, 0).MoveToOuterDisposeScope();
    }
}
