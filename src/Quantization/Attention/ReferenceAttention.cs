using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// Plain scaled dot-product attention in float32 over full-precision keys and values, with grouped-query
/// attention: the reference every faster path is checked against.
/// </summary>
internal static class ReferenceAttention
{
    /// <summary>
    /// Attends queries [B, Hq, Tq, D] over keys [B, Hkv, N, D] and values [B, Hkv, N, Dv]; Hq must be a multiple of Hkv.
    /// With <paramref name="causal"/>, the queries are the last Tq positions of the N cached ones and each sees
    /// only positions up to its own.
    /// </summary>
    /// <returns>float32 [B, Hq, Tq, Dv].</returns>
    public static Tensor Attend(Tensor query, Tensor keys, Tensor values, bool causal = false, double? scale = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        if (query.dim() != 4 || keys.dim() != 4 || values.dim() != 4)
        {
            throw new ArgumentException("Query, keys and values must be 4-dimensional [B, H, T, D].");
        }

        long hq = query.size(1), hkv = keys.size(1), n = keys.size(2), tq = query.size(2);
        if (hkv == 0 || hq % hkv != 0 || query.size(3) != keys.size(3) || keys.size(2) != values.size(2) || query.size(0) != keys.size(0))
        {
            throw new ArgumentException($"Incompatible shapes: query [{string.Join(", ", query.shape)}], keys [{string.Join(", ", keys.shape)}], values [{string.Join(", ", values.shape)}].");
        }

        using var scope = NewDisposeScope();
        long groups = hq / hkv, b = query.size(0);
        var k = keys.to(ScalarType.Float32);
        var v = values.to(ScalarType.Float32);

        // Grouped-query attention with the query heads folded: the G query heads of a key-value head are G·Tq rows of one
        // product against that head's keys [B, H_kv, G·Tq, N], so keys and values are never copied per query head.
        var q = query.to(ScalarType.Float32).reshape(b, hkv, groups * tq, query.size(3));
        using var factor = (scale ?? (1.0 / Math.Sqrt(query.size(3)))).ToScalar();
        var scores = matmul(q, k.transpose(2, 3)).mul(factor);
        if (causal && tq > 1)
        {
            // Query i sits at position n - tq + i and may see positions 0..n - tq + i (for each of the G folded heads).
            var mask = ones(tq, n, ScalarType.Bool, query.device).triu(n - tq + 1);
            scores = scores.masked_fill(groups > 1 ? mask.repeat(groups, 1) : mask, Scalars.NegativeInfinity);
        }

        return matmul(scores.softmax(-1), v).view(b, hq, tq, values.size(3)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The same attention through <c>scaled_dot_product_attention</c> in the keys' own type (16-bit on a GPU), with the query
    /// heads of each KV head folded into its rows instead of copying keys and values per query head: queries
    /// [B, Hq, Tq, D] become [B, Hkv, G·Tq, D], and a causal mask keeps each row to the positions its token may see.
    /// For multi-token queries over a dequantized cache (a question prefilled over a remembered video) where the
    /// float32 copies of <see cref="Attend"/> would cost G times the cache in memory and time.
    /// </summary>
    /// <returns>float32 [B, Hq, Tq, Dv].</returns>
    public static Tensor AttendFolded(Tensor query, Tensor keys, Tensor values, bool causal = false, double? scale = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        string Shapes() => $"query [{string.Join(", ", query.shape)}], keys [{string.Join(", ", keys.shape)}], values [{string.Join(", ", values.shape)}]";
        if (query.dim() != 4 || keys.dim() != 4 || values.dim() != 4)
        {
            throw new ArgumentException($"Query, keys and values must be 4-dimensional [B, H, T, D]: {Shapes()}.");
        }

        long b = query.size(0), hq = query.size(1), tq = query.size(2), d = query.size(3);
        long hkv = keys.size(1), n = keys.size(2), dv = values.size(3);
        if (hkv == 0 || hq % hkv != 0 || keys.size(3) != d || values.size(2) != n || keys.size(0) != b || (causal && tq > n))
        {
            throw new ArgumentException($"Incompatible shapes: {Shapes()}.");
        }

        using var scope = NewDisposeScope();
        long groups = hq / hkv;
        var q = query.to(keys.dtype).reshape(b, hkv, groups * tq, d);
        Tensor? mask = null;
        if (causal && tq > 1)
        {
            // Row g·Tq + i is token i, at position n - tq + i: it sees positions 0..n - tq + i.
            mask = ones(tq, n, ScalarType.Bool, query.device).triu(n - tq + 1).logical_not().repeat(groups, 1);
        }

        if (scale is { } sc && Math.Abs(sc - (1.0 / Math.Sqrt(d))) > 1e-12)
        {
            using var factor = (sc * Math.Sqrt(d)).ToScalar();
            q = q.mul(factor);
        }

        var output = nn.functional.scaled_dot_product_attention(q, keys, values, mask);
        return output.reshape(b, hq, tq, dv).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
