using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention;

/// <summary>
/// <see cref="CpuFusedAttention"/> over several caches at once (a batched decode step): one parallel loop over every
/// sequence's (batch item, KV head) work items, rather than one parallel loop per sequence, so that short sequences
/// do not leave cores idle while the loop of each call drains. Each item runs the same routine as a one-cache call, so the
/// result is bitwise what per-sequence calls give.
/// </summary>
internal static class CpuBatchedFusedAttention
{
    /// <summary>
    /// Attends sequence i (<paramref name="caches"/>[i], a cache of one batch item) with row <paramref name="rows"/>[i] of
    /// <paramref name="query"/> [N, Hq, Tq, D], writing row <paramref name="rows"/>[i] of <paramref name="output"/>
    /// (float32 [N, Hq, Tq, Dv], contiguous, on the CPU).
    /// </summary>
    public static unsafe void Attend(IReadOnlyList<QuantizedKVCache> caches, IReadOnlyList<int> rows, Tensor query, Tensor output, bool causal, double scale, FusedKernelPath path)
    {
        var resolved = SimdKernels.Resolve(path);
        var runs = new CpuFusedAttention[caches.Count];
        var firstItem = new int[caches.Count + 1];
        using (var scope = NewDisposeScope())
        {
            for (int i = 0; i < caches.Count; i++)
            {
                runs[i] = new CpuFusedAttention(caches[i], query.narrow(0, rows[i], 1), causal, scale, resolved);
                firstItem[i + 1] = firstItem[i] + runs[i].Items;
            }
        }

        int total = firstItem[^1];
        var owner = new int[total];
        for (int i = 0; i < caches.Count; i++)
        {
            Array.Fill(owner, i, firstItem[i], firstItem[i + 1] - firstItem[i]);
        }

        void Run(int item) => runs[owner[item]].RunItem(item - firstItem[owner[item]]);

        if (total == 1)
        {
            Run(0);
        }
        else
        {
            Parallel.For(0, total, Run);
        }

        long rowFloats = output.size(1) * output.size(2) * output.size(3);
        float* o = (float*)PackedSource.Pointer(output);
        for (int i = 0; i < runs.Length; i++)
        {
            runs[i].Result.AsSpan().CopyTo(new Span<float>(o + (rows[i] * rowFloats), (int)rowFloats));
        }
    }
}
