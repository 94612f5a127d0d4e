using System.Diagnostics;
using System.Globalization;
using System.Text;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Batching;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// Many conversations at once with the built-in model (CPU): C streams arrive together and join a
/// <see cref="GenerationScheduler"/>, which prefills one per step while the joined ones decode, then all decode together. Reports aggregate decode tokens per second (tokens
/// made by steps, over the steps' wall time) and each stream's first-token latency (arrival to its first token), for
/// FP16 and vidkv-1.5/1.58 caches, with row-wise (batch-independent, bitwise) and batch-wide matrix products.
/// </summary>
internal static class BatchingBenchmark
{
    public static int Run(string commandLine, int[] concurrency, int frames, int tokens, string? output)
    {
        TorchRuntime.EnsureLoaded();
        using var model = BuiltInModel.Load();
        var rows = new List<string>();
        foreach (string preset in new[] { "fp16", "vidkv-1.5/1.58" })
        {
            foreach (bool rowWise in new[] { true, false })
            {
                foreach (int c in concurrency)
                {
                    rows.Add(Measure(model, preset, rowWise, c, frames, tokens));
                    Console.Error.WriteLine(rows[^1]);
                }
            }
        }

        var sb = new StringBuilder();
        sb.AppendLine("# Batched decoding with the built-in model (CPU)");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{commandLine}`");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}; {TorchRuntime.Description}; {get_num_threads()} torch threads");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Model: {BuiltInModel.Name}; each stream: {frames} random 64x64 frames, a distinct question, greedy, {tokens} new tokens (no end-of-turn stop); Compact profile");
        sb.AppendLine("- All streams arrive at once and join a GenerationScheduler: each step prefills one joining stream (whole prompt) and advances the joined ones by a token. First token = arrival to the stream's first token (its prefill's). Decode tok/s = tokens made by the steps after the last stream joined / their wall time. Medians of three runs after a warm-up run (decode tok/s, and each run's p50 and max first token).");
        sb.AppendLine("- Row-wise: matrix products once per row (tokens bitwise those of one-at-a-time runs); batch-wide: once over the batch.");
        sb.AppendLine();
        sb.AppendLine("| preset | products | streams | decode tok/s | x one stream | first token p50 ms | first token max ms | cache KiB (all streams, end of prefill) |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        rows.ForEach(r => sb.AppendLine(r));
        Console.WriteLine(sb.ToString());
        if (output is not null)
        {
            Machine.WriteReport(output, sb.ToString());
        }

        return 0;
    }

    private static readonly Dictionary<(string, bool), double> OneStream = new();

    private static string Measure(VideoLanguageModelBase model, string preset, bool rowWise, int streams, int frames, int tokens)
    {
        var cache = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
        var options = new GenerationOptions { MaxNewTokens = tokens, StopAtEndOfTurn = false };
        Run(model, cache, options, rowWise, 1, frames); // warm-up
        // Medians of three runs: one run on a small machine moves with whatever else it does.
        var runs = Enumerable.Range(0, 3).Select(_ => Run(model, cache, options, rowWise, streams, frames)).ToArray();
        double decodeRate = Stats.Median(runs.Select(r => r.DecodeRate));
        long cacheBytes = runs.Max(r => r.CacheBytes);
        foreach (var r in runs)
        {
            Array.Sort(r.FirstTokenMs);
        }

        double firstP50 = Stats.Median(runs.Select(r => r.FirstTokenMs[r.FirstTokenMs.Length / 2]));
        double firstMax = Stats.Median(runs.Select(r => r.FirstTokenMs[^1]));
        if (streams == 1)
        {
            OneStream[(preset, rowWise)] = decodeRate;
        }

        double ratio = OneStream.TryGetValue((preset, rowWise), out double one) ? decodeRate / one : double.NaN;
        return string.Create(CultureInfo.InvariantCulture,
            $"| {preset} | {(rowWise ? "row-wise" : "batch-wide")} | {streams} | {decodeRate:F1} | {ratio:F2} | {firstP50:F0} | {firstMax:F0} | {cacheBytes / 1024.0:F0} |");
    }

    private static (double DecodeRate, double[] FirstTokenMs, long CacheBytes) Run(VideoLanguageModelBase model, KVCacheOptions cache, GenerationOptions options, bool rowWise, int streams, int frames)
    {
        using var scope = NewDisposeScope();
        using var scheduler = new GenerationScheduler(model, new GenerationSchedulerOptions { MaxConcurrentSequences = streams, RowWise = rowWise });
        var requests = Enumerable.Range(0, streams).Select(i =>
        {
            manual_seed(i);
            var pixels = randint(0, 256, new long[] { frames, 64, 64, 3 }, ScalarType.Byte);
            return new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart($"Question {i}: what moves?") }) })
            {
                Videos = new[] { MediaSource.FromPixels(pixels) },
            };
        }).ToArray();

        var first = new double[streams];
        var received = new int[streams];
        long cacheBytes = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < streams; i++)
        {
            int index = i;
            scheduler.Add(requests[i], options, cache, update =>
            {
                if (received[index]++ == 0)
                {
                    first[index] = clock.Elapsed.TotalMilliseconds;
                }
            }, error =>
            {
                if (error is not null)
                {
                    throw new InvalidOperationException($"Stream {index} failed.", error);
                }
            });
        }

        // Steps while some stream still joins interleave its prefill with the others' decoding; the decode rate counts the
        // steps after the last one joined (all streams decoding together).
        while (scheduler.JoiningSequences > 0)
        {
            scheduler.Step();
            cacheBytes = Math.Max(cacheBytes, scheduler.CacheMemory.TotalBytes);
        }

        long before = received.Sum();
        var decode = Stopwatch.StartNew();
        while (!scheduler.IsIdle)
        {
            scheduler.Step();
        }

        return ((received.Sum() - before) / decode.Elapsed.TotalSeconds, first, cacheBytes);
    }
}
