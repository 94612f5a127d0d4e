using System.Globalization;
using System.Text;
using TorchSharp;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// <c>vidkv-bench timeline</c>: where one launch of the tensor-core attention kernel spends its time, part by part, on a
/// GPU. The kernel is compiled with <c>VIDKV_TIMELINE</c> (see <see cref="MmaAttention.Timeline"/>): thread 0 of every
/// block writes the global timer (ns, common to all SMs) and its SM's cycle counter at each event (entry, copy table,
/// query gathered, transform, main loop, state stored, group counter, group merged, head counter, exit). For each cached
/// length (LLaVA-OneVision-7B layer: 4 KV heads, 28 query heads, head dim 128, one decode query, vidkv-1.5/1.58 Compact,
/// as <c>decode</c> makes it), after warm-up launches, one launch's events are read back: when blocks start after the
/// first one (launch skew), each part's duration per block (cycles, and µs at the clock the blocks ran at), and the path
/// of the block that wrote the output (its events from the launch's first entry). A diagnostic build: its stores and
/// timer reads cost a little time of their own, so its durations are not the benchmark's.
/// </summary>
internal static class KernelTimeline
{
    private static readonly string[] Events = ["entry", "copy table", "query gathered", "transform", "main loop", "state stored", "group counter", "group merged", "head counter", "exit"];

    public static int Run(string commandLine, int[] tokenCounts, int launches, string? outPath)
    {
        Machine.RequireCuda();
        if (!FusedAttention.IsSupported(FusedKernelPath.Cuda))
        {
            throw new InvalidOperationException($"the CUDA fused path is not available here: {FusedAttention.CudaDescription}");
        }

        using var noGrad = no_grad();
        var dev = torch.device("cuda");
        var sb = new StringBuilder();
        sb.AppendLine("# One launch of the tensor-core attention kernel, part by part");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`; {Machine.Description}; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.");
        sb.AppendLine("The kernel compiled with VIDKV_TIMELINE (thread 0 of each block reads the global timer and the SM clock at");
        sb.AppendLine("each event): a diagnostic build, whose timer reads and stores cost a little time of their own. Times in µs from");
        sb.AppendLine("the launch's first block entry; durations per block from the SM clock (µs at the clock the blocks ran at).");
        foreach (int n in tokenCounts)
        {
            using var scope = NewDisposeScope();
            BenchRandom.Seed(n);
            const long h = 4, hq = 28, d = 128;
            var keys = BenchRandom.OutlierKeys(1, h, n, d, dev);
            var values = randn(new[] { 1, h, (long)n, d }, device: dev).to(ScalarType.Float16);
            var query = randn(new[] { 1, hq, 1, d }, device: dev).to(ScalarType.Float16);
            using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact));
            cache.Prefill(keys, values, randn(new[] { (long)n }, device: dev));
            keys.Dispose();
            values.Dispose();
            const long maxBlocks = 1 << 14;
            var timeline = zeros(new[] { maxBlocks * MmaAttention.TimelineSlots }, ScalarType.Int64, dev);
            long[] slots;
            MmaAttention.Timeline = timeline;
            try
            {
                for (int i = 0; i < launches; i++)
                {
                    // Zeroed and synchronized first: a launch that may overlap the previous kernel (programmatic
                    // dependent launch) writes its first events before it waits for that kernel.
                    timeline.zero_();
                    cuda.synchronize();
                    cache.AttendFused(query, path: FusedKernelPath.Cuda).Dispose();
                }

                if (!FusedAttention.LastCudaKernel.StartsWith("tensor cores", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"the launch ran {FusedAttention.LastCudaKernel}, not the tensor-core kernel");
                }

                cuda.synchronize();
                slots = timeline.cpu().data<long>().ToArray();
            }
            finally
            {
                MmaAttention.Timeline = null;
            }

            sb.AppendLine();
            sb.Append(Describe(n, slots));
        }

        Console.Write(sb.ToString());
        if (outPath is not null)
        {
            Machine.WriteReport(outPath, sb.ToString());
        }
        return 0;
    }

    private readonly record struct BlockEvents(long X, long Y, long Sm, long[] Time, long[] Clock);

    private static string Describe(int tokens, long[] slots)
    {
        int per = MmaAttention.TimelineSlots, events = Events.Length;
        var blocks = new List<BlockEvents>();
        for (int b = 0; b < slots.Length / per; b++)
        {
            var s = slots.AsSpan(b * per, per);
            if (s[0] == 0)
            {
                continue;
            }

            long id = s[2 * events];
            var time = new long[events];
            var clock = new long[events];
            for (int e = 0; e < events; e++)
            {
                time[e] = s[2 * e];
                clock[e] = s[(2 * e) + 1];
            }

            blocks.Add(new BlockEvents(id & 0xFFFFF, (id >> 20) & 0xFFFFF, s[(2 * events) + 1], time, clock));
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"## {tokens:N0} cached tokens");
        sb.AppendLine();
        if (blocks.Count == 0)
        {
            sb.AppendLine("No block wrote an event (the launch ran another kernel or the buffer was not passed).");
            return sb.ToString();
        }

        long t0 = blocks.Min(b => b.Time[0]);
        long end = blocks.Max(b => b.Time[9]);
        // The blocks' clock rate: SM cycles over global-timer nanoseconds from entry to exit, the median of the blocks
        // that lived at least 2 µs (the global timer may tick coarser than the SM clock).
        var rates = blocks.Where(b => b.Time[9] - b.Time[0] >= 2000).Select(b => (double)(b.Clock[9] - b.Clock[0]) / (b.Time[9] - b.Time[0])).Order().ToArray();
        double ghz = rates.Length > 0 ? rates[rates.Length / 2] : double.NaN;
        int sms = blocks.Select(b => b.Sm).Distinct().Count();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{blocks.Count} blocks ({blocks.Max(b => b.X) + 1} splits x {blocks.Max(b => b.Y) + 1} KV heads) on {sms} SMs, at most {blocks.GroupBy(b => b.Sm).Max(g => g.Count())} on one; SM clock {ghz:F2} GHz; first entry to last exit {(end - t0) / 1000.0:F1} µs.");
        sb.AppendLine();
        sb.AppendLine("| event | blocks | from the first entry, µs: min | median | max |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        for (int e = 0; e < events; e++)
        {
            var at = blocks.Where(b => b.Time[e] != 0).Select(b => (b.Time[e] - t0) / 1000.0).Order().ToArray();
            if (at.Length > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {Events[e]} | {at.Length} | {at[0]:F2} | {at[at.Length / 2]:F2} | {at[^1]:F2} |");
            }
        }

        sb.AppendLine();
        sb.AppendLine("Each part per block (from the previous event the block reached), SM cycles and µs at that clock:");
        sb.AppendLine();
        sb.AppendLine("| part (ends at) | blocks | median cycles | max cycles | median µs | max µs |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        for (int e = 1; e < events; e++)
        {
            var d = new List<long>();
            foreach (var b in blocks.Where(b => b.Clock[e] != 0))
            {
                int prev = e - 1;
                while (prev > 0 && b.Clock[prev] == 0)
                {
                    prev--;
                }

                d.Add(b.Clock[e] - b.Clock[prev]);
            }

            if (d.Count > 0)
            {
                d.Sort();
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {Events[e]} | {d.Count} | {d[d.Count / 2]:N0} | {d[^1]:N0} | {d[d.Count / 2] / ghz / 1000:F2} | {d[^1] / ghz / 1000:F2} |");
            }
        }

        sb.AppendLine();
        sb.AppendLine("The blocks that wrote the output (last at their KV head's counter), µs from the first entry:");
        sb.AppendLine();
        sb.AppendLine("| split, head | SM | " + string.Join(" | ", Events) + " |");
        sb.AppendLine("|---|---:|" + string.Concat(Enumerable.Repeat("---:|", events)));
        // The last block of each KV head to reach the head counter: the one that merged into the output.
        var finals = blocks.Where(b => b.Time[8] != 0 && b.Time[9] >= b.Time[8]).GroupBy(b => b.Y).Select(g => g.MaxBy(b => b.Time[8]));
        foreach (var b in finals.OrderBy(b => b.Y))
        {
            var at = b.Time.Select(t => t == 0 ? "-" : ((t - t0) / 1000.0).ToString("F2", CultureInfo.InvariantCulture));
            sb.AppendLine($"| {b.X.ToString(CultureInfo.InvariantCulture)}, {b.Y.ToString(CultureInfo.InvariantCulture)} | {b.Sm.ToString(CultureInfo.InvariantCulture)} | {string.Join(" | ", at)} |");
        }

        return sb.ToString();
    }
}
