using System.Diagnostics;
using System.Globalization;
using System.Text;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// Video memory at the cache level: for LLaVA-OneVision-0.5B's cache geometry (24 layers, 2 KV heads, head dim 64) and
/// N frames of video (196 tokens each, plus a newline and 24 tokens of template), the bytes of a prefilled cache's
/// snapshot for each preset against a 16-bit cache of the same tokens, the time to fork a request cache from it, and
/// the time and size of its serialized form. Keys and values are synthetic bfloat16 (the checkpoint's type).
/// </summary>
internal static class SnapshotBenchmark
{
    private const int Layers = 24, KvHeads = 2, HeadDim = 64, TextTokens = 24;

    public static int Run(string commandLine, int[] frameCounts, int repeats, string? output)
    {
        TorchRuntime.EnsureLoaded();
        var variants = new (string Label, KVCacheOptions Options)[]
        {
            ("fp16", KVCacheOptions.FromPreset("fp16", CacheProfile.Compact)),
            ("kivi-2 Compact", KVCacheOptions.FromPreset("kivi-2", CacheProfile.Compact)),
            ("vidkv-1.5/1.58 Compact", KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact)),
            ("vidkv-1.5/1.66 Compact", KVCacheOptions.FromPreset("vidkv-1.5/1.66", CacheProfile.Compact)),
            ("vidkv-1.5/1.58 Reference", KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Reference)),
        };
        var rows = new List<string>();
        foreach (int frames in frameCounts)
        {
            long tokens = (frames * 196L) + 1 + TextTokens;
            foreach (var (label, options) in variants)
            {
                rows.Add(Measure(label, options, frames, tokens, repeats));
                Console.Error.WriteLine(rows[^1]);
            }
        }

        var sb = new StringBuilder();
        sb.AppendLine("# KV cache snapshots at LLaVA-OneVision-0.5B's geometry");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{commandLine}`");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}; {TorchRuntime.Description}; {get_num_threads()} torch threads");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Geometry: {Layers} layers, batch 1, {KvHeads} KV heads, head dim {HeadDim}; tokens = 196 per frame + 1 + {TextTokens}; synthetic bfloat16 keys (two outlier channels) and values; importance scores on the video tokens");
        sb.AppendLine("- Snapshot bytes are counted from the tensors the snapshot holds (all layers); \"16-bit\" is 2 bytes per key and value element of the same tokens.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Times are medians of {repeats} runs after a warm-up: snapshot = `KVCacheSnapshot.Create` over every layer, fork = `KVCacheSnapshot.Fork` (one cache per layer, blocks shared), write/read = `WriteTo`/`ReadFrom` through a MemoryStream (checksums included). \"Fork copies\" is what each fork copies (residual and scores).");
        sb.AppendLine();
        sb.AppendLine("| frames | tokens | preset | snapshot MiB | 16-bit MiB | snapshot / 16-bit | fork copies KiB | snapshot ms | fork ms | serialized MiB | write ms | read ms |");
        sb.AppendLine("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        rows.ForEach(r => sb.AppendLine(r));
        Console.WriteLine(sb.ToString());
        if (output is not null)
        {
            Machine.WriteReport(output, sb.ToString());
        }

        return 0;
    }

    private static string Measure(string label, KVCacheOptions options, int frames, long tokens, int repeats)
    {
        using var scope = NewDisposeScope();
        var caches = new QuantizedKVCache[Layers];
        try
        {
            for (int layer = 0; layer < Layers; layer++)
            {
                using var layerScope = NewDisposeScope();
                manual_seed(100 + layer);
                var offset = zeros(HeadDim);
                offset[5] = 8f;
                offset[40] = -6f;
                var keys = ((randn(1, KvHeads, tokens, HeadDim) * 2) + offset).to(ScalarType.BFloat16);
                var values = randn(1, KvHeads, tokens, HeadDim).to(ScalarType.BFloat16);
                var importance = rand(tokens);
                importance.narrow(0, 0, TextTokens).fill_(Scalars.NaN);
                caches[layer] = new QuantizedKVCache(options);
                caches[layer].Prefill(keys, values, importance);
            }

            using var snapshot = KVCacheSnapshot.Create(caches);
            var memory = snapshot.Memory;
            double snapshotMs = Median(repeats, () =>
            {
                var sw = Stopwatch.StartNew();
                using var s = KVCacheSnapshot.Create(caches);
                return sw.Elapsed.TotalMilliseconds;
            });

            long forkCopies = 0;
            double forkMs = Median(repeats, () =>
            {
                var sw = Stopwatch.StartNew();
                var forks = snapshot.Fork();
                double ms = sw.Elapsed.TotalMilliseconds;
                forkCopies = forks.Sum(f => Bytes(f.ResidualKeys) + Bytes(f.ResidualValues) + Bytes(f.RetainedScores));
                foreach (var f in forks)
                {
                    f.Dispose();
                }

                return ms;
            });

            const string key = "bench";
            var stream = new MemoryStream();
            snapshot.WriteTo(stream, key);
            long serialized = stream.Length;
            double writeMs = Median(repeats, () =>
            {
                stream.SetLength(0);
                var sw = Stopwatch.StartNew();
                snapshot.WriteTo(stream, key);
                return sw.Elapsed.TotalMilliseconds;
            });
            double readMs = Median(repeats, () =>
            {
                stream.Position = 0;
                var sw = Stopwatch.StartNew();
                using var read = KVCacheSnapshot.ReadFrom(stream, key, options);
                double ms = sw.Elapsed.TotalMilliseconds;
                if (read.Memory != memory)
                {
                    throw new InvalidOperationException("The snapshot read back holds other bytes than the one written.");
                }

                return ms;
            });

            const double MiB = 1 << 20;
            return string.Create(CultureInfo.InvariantCulture,
                $"| {frames} | {tokens} | {label} | {memory.TotalBytes / MiB:F2} | {memory.Fp16Bytes / MiB:F2} | {100.0 * memory.RatioToFp16:F1} % | {forkCopies / 1024.0:F1} | {snapshotMs:F2} | {forkMs:F2} | {serialized / MiB:F2} | {writeMs:F1} | {readMs:F1} |");
        }
        finally
        {
            foreach (var c in caches)
            {
                c?.Dispose();
            }
        }
    }

    private static long Bytes(Tensor? t) => t is null ? 0 : t.NumberOfElements * t.ElementSize;

    private static double Median(int repeats, Func<double> run)
    {
        run(); // warm-up
        return Stats.Median(Enumerable.Range(0, repeats).Select(_ => run()).ToArray());
    }
}
