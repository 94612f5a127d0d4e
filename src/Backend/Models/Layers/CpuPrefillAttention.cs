using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>
/// Prefill attention of a bf16 model on the CPU as two matrix products and a softmax, in blocks of query rows: libtorch's
/// CPU <c>scaled_dot_product_attention</c> reached 90 to 120 GFLOP/s at the 0.5B geometry's prefill shapes (head sizes 72
/// and 64) where its bf16 matrix products reach 650 to 770 (<c>vidkv-bench prefill --parts</c>).
/// </summary>
/// <remarks>
/// The arithmetic is transformers' eager attention's: bf16 scores of the scaled queries, a float32 softmax, probabilities
/// rounded to bf16 times the values. The scores' rounding puts the output about 1 % (relative) from float32 attention,
/// where libtorch's fused bf16 kernel, which keeps scores in float32, is about 0.2 % away; float32 scores (widened
/// queries and keys) were measured 2.2 times slower at the vision tower's shapes, no faster than libtorch's kernel. Query heads of one key-value head are folded into the rows of one
/// product (grouped-query attention without copying keys or values), and a causal block reads only the keys up to its
/// last row, with the mask applied to the block's diagonal part only.
/// </remarks>
internal static class CpuPrefillAttention
{
    /// <summary>Bytes of one block's float32 scores (all heads of a batch item): rows per block follow from it.</summary>
    internal const long BlockBytes = 24L << 20;

    /// <summary>Whether the blocked path serves these queries and keys: bf16 on the CPU, more than one query.</summary>
    public static bool Applies(Tensor q, Tensor keys)
        => q.device_type == DeviceType.CPU && q.dtype == ScalarType.BFloat16 && keys.dtype == ScalarType.BFloat16 && q.size(2) > 1;

    /// <summary>Attention of q [B, H, T, hd] over keys and values [B, Hkv, N, hd] (H a multiple of Hkv); causal aligns the
    /// last query with the last key. Returns [B, H, T, hd].</summary>
    public static Tensor Attend(Tensor q, Tensor keys, Tensor values, bool causal)
    {
        long b = q.size(0), heads = q.size(1), t = q.size(2), hd = q.size(3);
        long kvHeads = keys.size(1), n = keys.size(2), dv = values.size(3);
        if (heads % kvHeads != 0 || keys.size(0) != b || values.size(0) != b || values.size(2) != n || keys.size(3) != hd)
        {
            throw new ArgumentException($"Queries [{string.Join(", ", q.shape)}] do not fit keys [{string.Join(", ", keys.shape)}] and values [{string.Join(", ", values.shape)}].", nameof(keys));
        }

        if (causal && t > n)
        {
            throw new ArgumentException($"A causal query block of {t} rows needs at least as many keys; got {n}.", nameof(keys));
        }

        using var scope = NewDisposeScope();
        long groups = heads / kvHeads, offset = n - t; // query row i sees keys [0, offset + i]
        using var scale = (1.0 / Math.Sqrt(hd)).ToScalar();
        var qs = q.mul(scale).view(b, kvHeads, groups, t, hd); // a scaled copy
        var output = empty(new[] { b, heads, t, dv }, q.dtype, q.device);
        long rows = Math.Min(Math.Max(BlockBytes / (heads * n * sizeof(float)) / 16 * 16, 16), t); // float32 probabilities

        // Additive mask of a causal block's diagonal part: row r may read diagonal column c when c <= r.
        using var minusInfinity = float.NegativeInfinity.ToScalar();
        using var diagonal = causal ? full(new[] { rows, rows }, minusInfinity, q.dtype).triu(1) : null;
        for (long i = 0; i < b; i++)
        {
            using var item = NewDisposeScope();
            var k = keys[i];                                               // [Hkv, N, hd]
            var v = values[i];                                             // [Hkv, N, dv]
            var o = output[i].view(kvHeads, groups, t, dv);
            for (long start = 0; start < t; start += rows)
            {
                using var block = NewDisposeScope();
                long r = Math.Min(rows, t - start);
                long visible = causal ? offset + start + r : n;
                var qb = qs[i].narrow(2, start, r).reshape(kvHeads, groups * r, hd);     // query heads folded into rows
                var scores = bmm(qb, k.narrow(1, 0, visible).transpose(1, 2));          // [Hkv, G r, visible], bf16
                if (causal)
                {
                    scores.view(kvHeads, groups, r, visible).narrow(3, offset + start, r).add_(diagonal!.narrow(0, 0, r).narrow(1, 0, r));
                }

                var p = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
                o.narrow(2, start, r).copy_(bmm(p, v.narrow(1, 0, visible)).view(kvHeads, groups, r, dv));
            }
        }

        return output.MoveToOuterDisposeScope();
    }
}
