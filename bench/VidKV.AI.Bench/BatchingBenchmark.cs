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
/// Many conversations at once with the built-in model (CPU): C streams arrive together, each is admitted (its prefill) in
/// turn by a <see cref="BatchedGenerator"/>, then all decode together. Reports aggregate decode tokens per second (tokens
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
        sb.AppendLine("- All streams arrive at once; the generator admits them one by one (whole prefill each, no chunking), then steps all active ones together. First token = arrival to the stream's first token (its prefill's). Decode tok/s = tokens made by steps / wall time of the steps. Single-run figures after a warm-up run.");
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
        var (decodeRate, firstTokens, cacheBytes) = Run(model, cache, options, rowWise, streams, frames);
        if (streams == 1)
        {
            OneStream[(preset, rowWise)] = decodeRate;
        }

        double ratio = OneStream.TryGetValue((preset, rowWise), out double one) ? decodeRate / one : double.NaN;
        Array.Sort(firstTokens);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {preset} | {(rowWise ? "row-wise" : "batch-wide")} | {streams} | {decodeRate:F1} | {ratio:F2} | {firstTokens[firstTokens.Length / 2]:F0} | {firstTokens[^1]:F0} | {cacheBytes / 1024.0:F0} |");
    }

    private static (double DecodeRate, double[] FirstTokenMs, long CacheBytes) Run(VideoLanguageModelBase model, KVCacheOptions cache, GenerationOptions options, bool rowWise, int streams, int frames)
    {
        using var scope = NewDisposeScope();
        using var generator = new BatchedGenerator(model, rowWise);
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
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < streams; i++)
        {
            generator.Admit(requests[i], options, cache);
            first[i] = clock.Elapsed.TotalMilliseconds;
        }

        long cacheBytes = generator.Memory.TotalBytes;
        long made = 0;
        var decode = Stopwatch.StartNew();
        while (generator.Active.Count > 0)
        {
            made += generator.Step().Count(u => u.Update?.TokenId is not null);
        }

        return (made / decode.Elapsed.TotalSeconds, first, cacheBytes);
    }
}
