using TorchSharp;
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
    }

    /// <summary>
    /// <see cref="AttentionInput.Hidden"/> [B, T, D] at consecutive positions. Without a cache: attention over the input alone.
    /// With an empty cache: the same (prefill attention uses the exact keys and values), then the cache is filled. Otherwise
    /// the new keys and values are appended and the queries attend over the whole cache.
    /// </summary>
    public Tensor forward(AttentionInput input)
    {
        using var scope = NewDisposeScope();
        var x = input.Hidden;
        long b = x.shape[0], t = x.shape[1];
        Tensor Heads(Tensor y, int heads) => y.view(b, t, heads, _headDim).transpose(1, 2);
        Tensor Rotate(Tensor y) => input.Rotary is { } r ? RotaryEmbedding.Apply(y, r) : y;
        var q = Rotate(Heads(q_proj.forward(x), _heads));    // [B, H, T, hd]
        var k = Rotate(Heads(k_proj.forward(x), _kvHeads));  // [B, Hkv, T, hd]
        var v = Heads(v_proj.forward(x), _kvHeads);          // [B, Hkv, T, hd]

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

            if (replaced.QueryMask is { } m && (m.dtype != ScalarType.Bool || m.dim() != 2 || m.shape[0] != b || m.shape[1] != t))
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
            cache.Append(k, v);
            output = cache.AttendForDecode(q, causal: true).to(x.dtype);
        }

        return o_proj.forward(output.transpose(1, 2).reshape(b, t, _heads * _headDim)).MoveToOuterDisposeScope();
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
    public Tensor ForwardDecodeBatch(Tensor hidden, RotaryTables rotary, IReadOnlyList<VidKV.AI.Quantization.Cache.QuantizedKVCache> caches, bool rowWise)
    {
        using var scope = NewDisposeScope();
        var profile = StepProfile.Current;
        profile?.Mark("norms, residual adds, embedding (between layers)");
        long n = hidden.shape[0];
        Tensor Heads(Tensor y, int heads) => y.view(n, 1, heads, _headDim).transpose(1, 2);
        Tensor Project(LinearLayer p, Tensor y) => rowWise ? PerRow(y, p.forward) : p.forward(y);
        var q = RotaryEmbedding.Apply(Heads(Project(q_proj, hidden), _heads), rotary);    // [N, H, 1, hd]
        var k = RotaryEmbedding.Apply(Heads(Project(k_proj, hidden), _kvHeads), rotary);  // [N, Hkv, 1, hd]
        var v = Heads(Project(v_proj, hidden), _kvHeads);                                  // [N, Hkv, 1, hd]
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
        var projected = Project(o_proj, output.transpose(1, 2).reshape(n, 1, _heads * _headDim));
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

        long heads = q.shape[1], kvHeads = keys.shape[1];
        if (kvHeads == heads)
        {
            return nn.functional.scaled_dot_product_attention(q, keys, values, null, 0.0, causal);
        }

        long groups = heads / kvHeads, b = q.shape[0], n = keys.shape[2];
        Tensor Group(Tensor y, long head) => y.narrow(1, head, 1).expand(b, groups, n, y.shape[3]);
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
        var rows = new Tensor[x.shape[0]];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = f(x.narrow(0, i, 1).clone());
        }

        return cat(rows, 0).MoveToOuterDisposeScope();
    }
}
