using System.Diagnostics;
using System.Globalization;
using System.Text;
using TorchSharp;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Batching;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// Serving at LLaVA-OneVision-7B's geometry (random weights, meant for the GPU machine):
/// <list type="number">
/// <item>Video memory: time to the first token of a first question (vision tower over the frames, projector and pooling,
/// prefill of the video prefix, its snapshot, the question's prefill) and of a follow-up (a fork of the snapshot and the
/// question's prefill), FP16 cache against vidkv-1.5/1.58 Compact.</item>
/// <item>Capacity: how many independent 256-frame conversations (each its own cache, read back from a serialized
/// snapshot so that no bytes are shared) each cache holds in one memory budget, counted from the bytes their tensors hold,
/// with room for the tokens each will generate; then one batched decode step over all of them.</item>
/// <item>Throughput: batched decode steps (one pass through projections and MLP for N sequences, one attention call over the N
/// caches per layer, and for the fused cache also one call per sequence, interleaved) at 1, 4, 16 and 64 streams:
/// aggregate tokens per second against one stream's.</item>
/// </list>
/// </summary>
internal static class ServingBenchmark
{
    private const int QuestionTokens = 20;
    private const int SystemTokens = 14;

    public static int Run(string commandLine, string device, int[] memoryFrames, int frames, int[] streams, double budgetGiB, int newTokens, int steps, int visionLayers, int layers, string? output)
    {
        bool onCuda = device == "cuda";
        using var noGrad = no_grad();
        using var model = ModelDecodeBenchmark.CreateSevenB(device, visionLayers, layers, out var config, out var dev, out var dtype);
        var presets = new[]
        {
            ("FP16", KVCacheOptions.FromPreset("fp16")),
            ("vidkv-1.5/1.58 Compact", KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { DecodeAttention = DecodeAttention.Fused }),
        };

        var report = new StringBuilder();
        report.AppendLine($"Command: `{commandLine}`");
        report.AppendLine($"Machine: {Machine.Description}; {TorchRuntime.Description}");
        report.AppendLine($"Device: {device}; LLaVA-OneVision-7B geometry ({layers} decoder layers, hidden 3584, 28 query / 4 KV heads, head dim 128; SigLIP {visionLayers} layers at 384 px), random weights, {dtype}.");
        report.AppendLine();

        // 1. Video memory.
        report.AppendLine("### Video memory: first question against a follow-up about the same video");
        report.AppendLine();
        report.AppendLine($"First = vision tower over the frames, projector and pooling, prefill of the video prefix ({SystemTokens} text tokens + the video), its snapshot, then the question's {QuestionTokens} tokens and the first token's logits. Follow-up = a fork of the snapshot, the question's prefill and the logits. Medians of 3 (1 warm-up), the device synchronized before each clock read.");
        report.AppendLine();
        report.AppendLine("| frames | prompt tokens | cache | first question TTFT ms | follow-up TTFT ms | speed-up | snapshot MiB |");
        report.AppendLine("|---:|---:|---|---:|---:|---:|---:|");
        foreach (int f in memoryFrames)
        {
            foreach (var (label, options) in presets)
            {
                report.AppendLine(MeasureMemory(model, config, f, label, options, dev, dtype, onCuda));
                Console.Error.WriteLine(report.ToString().TrimEnd().Split('\n')[^1]);
            }
        }

        report.AppendLine();
        long tokens = (frames * 196L) + 1 + SystemTokens + QuestionTokens;
        long budget = (long)(budgetGiB * 1024 * 1024 * 1024);
        report.AppendLine($"### Many conversations at {frames} frames ({tokens} cached tokens each) in a {budgetGiB:0.#} GiB budget");
        report.AppendLine();
        report.AppendLine($"Each conversation is its own cache, prefilled once from random embeddings, serialized, and read back per conversation (no shared bytes). Admitted while the bytes their tensors hold (the cache and, for the fused kernels, the workspace each cache keeps), plus room for {newTokens} new tokens each at the measured bytes per token, fit the budget. Decode: batched steps (one pass through embeddings, projections, norms, MLP and logits for the N sequences, products over the batch), {steps} timed steps after 2 warm-up, medians. Attention: one call over the N caches per layer (on CUDA one tensor-core launch for the caches that fit it; the kernel that ran is named), and for the fused cache also one call per sequence, the two interleaved step by step.");
        report.AppendLine();
        report.AppendLine("| cache | conversations that fit | bytes per conversation MiB | held MiB | streams | attention | ms per step | aggregate tokens/s | vs 1 stream |");
        report.AppendLine("|---|---:|---:|---:|---:|---|---:|---:|---:|");
        string file = Path.Combine(Path.GetTempPath(), $"vidkv-serving-{Environment.ProcessId}.snap");
        var profiles = new List<string>();
        var arrivals = new List<string>();
        try
        {
            foreach (var (label, options) in presets)
            {
                foreach (var row in MeasureServing(model, config, label, options, tokens, budget, newTokens, streams, steps, file, dev, dtype, onCuda, profiles, arrivals))
                {
                    report.AppendLine(row);
                    Console.Error.WriteLine(row);
                }
            }
        }
        finally
        {
            File.Delete(file);
        }

        AppendTable(report, "First-token latency when N streams arrive at once",
            $"N conversations of the table above (each a remembered {frames}-frame video: its own cache) get a question of {QuestionTokens} tokens at the same instant and are served as the GenerationScheduler serves them: each step prefills one arriving question over its cache, advances the streams that joined before by one batched decode step, then emits the arriving stream's first token. Latency = arrival to first token, the device synchronized by each token's copy to the host. Single run, after the decode measurements above. A first question about a video not yet remembered adds the first-question time of the video memory table (vision tower and prefill of the video) to its own stream.",
            "| cache | streams | first token min ms | p50 ms | max ms |", "|---|---:|---:|---:|---:|", arrivals);
        AppendTable(report, "Where a batched step's time goes",
            $"The batched step (one append call and one attention call over the N caches per layer) again for {steps} steps with each part's end marked in every layer: \"host\" is the time the host takes to issue each part (no synchronization), \"synchronized\" waits for the device before every clock read, so a part also holds the device work it issued. Milliseconds per step, summed over the layers; \"embedding, final norm, logits\" is what the step does outside the layers.",
            "| cache | streams | part | host ms per step | synchronized ms per step |", "|---|---:|---|---:|---:|", profiles);

        Console.WriteLine(report);
        if (output is not null)
        {
            Machine.WriteReport(output, report.ToString());
        }

        return 0;
    }

    private static string MeasureMemory(LlavaOnevisionModel model, LlavaOnevisionConfig config, int frames, string label, KVCacheOptions options, Device dev, ScalarType dtype, bool onCuda)
    {
        var first = new List<double>();
        var follow = new List<double>();
        long promptTokens = 0;
        double snapshotMiB = 0;
        for (int run = 0; run < 4; run++)
        {
            using var scope = NewDisposeScope();
            BenchRandom.Seed(11 + run);
            var pixels = rand([frames, 3, 384, 384], dtype: dtype, device: dev).mul(tensor(2f, dtype: dtype, device: dev)).sub(tensor(1f, dtype: dtype, device: dev));
            var system = randint(1000, 100000, [1, SystemTokens], device: dev);
            var question = randint(1000, 100000, [1, QuestionTokens], device: dev);
            ModelDecodeBenchmark.Sync(onCuda);

            var watch = Stopwatch.StartNew();
            var video = model.EncodeVideo(pixels).unsqueeze(0).to(dtype);
            var prefix = cat(new[] { model.Embed(system), video }, 1);
            using var cache = model.CreateCache(options);
            model.Forward(new DecoderInput(prefix) { Cache = cache });
            using var snapshot = KVCacheSnapshot.Create(cache.Layers);
            var logits = model.Logits(model.Forward(new DecoderInput(model.Embed(question)) { Cache = cache }).select(1, -1));
            logits.argmax(-1).cpu();
            double firstMs = watch.Elapsed.TotalMilliseconds;

            watch.Restart();
            using var fork = new ModelKVCache(snapshot.Fork(), options);
            var again = model.Logits(model.Forward(new DecoderInput(model.Embed(question)) { Cache = fork }).select(1, -1));
            again.argmax(-1).cpu();
            double followMs = watch.Elapsed.TotalMilliseconds;
            if (run > 0)
            {
                first.Add(firstMs);
                follow.Add(followMs);
            }

            promptTokens = prefix.shape[1] + QuestionTokens;
            snapshotMiB = snapshot.Memory.TotalBytes / (1024.0 * 1024);
        }

        double a = Stats.Median(first), b = Stats.Median(follow);
        return string.Create(CultureInfo.InvariantCulture, $"| {frames} | {promptTokens} | {label} | {a:F0} | {b:F1} | {a / b:F0}x | {snapshotMiB:F1} |");
    }

    private static IEnumerable<string> MeasureServing(LlavaOnevisionModel model, LlavaOnevisionConfig config, string label, KVCacheOptions options, long tokens, long budget, int newTokens, int[] streams, int steps, string file, Device dev, ScalarType dtype, bool onCuda, List<string> profiles, List<string> arrivals)
    {
        // One prefilled conversation, serialized to a file; every conversation is read back from it, so each holds its own bytes.
        long perConversation, workspace;
        using (var scope = NewDisposeScope())
        {
            BenchRandom.Seed(7);
            using var cache = model.CreateCache(options);
            var embeds = randn([1, tokens, config.Text.HiddenSize], dtype: dtype, device: dev).mul(tensor(0.02f, dtype: dtype, device: dev));
            model.Forward(new DecoderInput(embeds) { Cache = cache, Importance = rand([tokens], device: dev) });
            // One decode step, so that the fused kernel's per-cache workspace exists and is counted too.
            var probe = (IBatchedDecoder)model;
            probe.ForwardDecodeBatch(model.Embed(randint(1000, 100000, [1, 1], device: dev)), new Tensor?[1], new[] { cache }, rowWise: false);
            ModelDecodeBenchmark.Sync(onCuda);
            long held = cache.Memory.TotalBytes;
            workspace = cache.Layers.Sum(l => l.CudaWorkspace is MmaAttention.Workspace w ? w.Bytes : 0);
            perConversation = held + workspace + (long)Math.Ceiling(held / (double)cache.Length * newTokens);
            using var snapshot = KVCacheSnapshot.Create(cache.Layers);
            using var stream = File.Create(file);
            snapshot.WriteTo(stream, "serving", CancellationToken.None);
        }

        var caches = new List<ModelKVCache>();
        var rows = new List<string>();
        try
        {
            long reserved = 0;
            while (reserved + perConversation <= budget)
            {
                using var stream = File.OpenRead(file);
                using var snapshot = KVCacheSnapshot.ReadFrom(stream, "serving", options, dev);
                caches.Add(new ModelKVCache(snapshot.Fork(), options));
                reserved += perConversation;
            }

            ModelDecodeBenchmark.Sync(onCuda);
            var decoder = (IBatchedDecoder)model;
            var measured = new List<(int N, string Attention, double Ms, double PerSecond)>();
            // The fused cache is measured both ways, interleaved step by step: one attention call over the N caches per
            // layer (the batched launch) and one call per sequence (as before it existed).
            var modes = options.DecodeAttention == DecodeAttention.Fused ? new[] { false, true } : new[] { false };
            foreach (int n in streams.Where(n => n <= caches.Count).Append(caches.Count).Distinct().Order())
            {
                var active = caches.Take(n).ToArray();
                var times = modes.Select(_ => new List<double>()).ToArray();
                var kernel = new string[modes.Length];
                for (int step = -2; step < steps; step++)
                {
                    for (int m = 0; m < modes.Length; m++)
                    {
                        using var scope = NewDisposeScope();
                        var ids = randint(1000, 100000, [n, 1], device: dev);
                        ModelDecodeBenchmark.Sync(onCuda);
                        Attention.PerSequenceAttention = modes[m];
                        try
                        {
                            var watch = Stopwatch.StartNew();
                            var hidden = decoder.ForwardDecodeBatch(model.Embed(ids), new Tensor?[n], active, rowWise: false);
                            model.Logits(hidden.select(1, -1)).argmax(-1).cpu();
                            if (step >= 0)
                            {
                                times[m].Add(watch.Elapsed.TotalMilliseconds);
                            }
                        }
                        finally
                        {
                            Attention.PerSequenceAttention = false;
                        }

                        kernel[m] = !options.IsQuantized ? "none" : onCuda ? FusedAttention.LastCudaKernel : "CPU";
                    }
                }

                if (n == 1 || n == 16 || n == caches.Count)
                {
                    profiles.AddRange(ProfileSteps(model, decoder, active, steps, label, dev, onCuda));
                }

                for (int m = 0; m < modes.Length; m++)
                {
                    double ms = Stats.Median(times[m]);
                    string attention = modes[m] ? "per sequence" : $"one call ({kernel[m]})";
                    measured.Add((n, attention, ms, n * 1000.0 / ms));
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label}: {n} streams, attention {attention}, {ms:F1} ms per step"));
                }
            }

            // Every conversation has now stepped: what their tensors hold, workspaces included, after it.
            long heldAll = caches.Sum(c => c.Memory.TotalBytes + c.Layers.Sum(l => l.CudaWorkspace is MmaAttention.Workspace w ? w.Bytes : 0));
            arrivals.AddRange(MeasureArrivals(model, decoder, caches, label, streams, dev, onCuda));
            foreach (var (n, attention, ms, perSecond) in measured)
            {
                // Against one stream of the same attention mode.
                double one = measured.FirstOrDefault(x => x.N == 1 && x.Attention.StartsWith(attention[..3], StringComparison.Ordinal)).PerSecond;
                rows.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| {label} | {caches.Count} | {perConversation / (1024.0 * 1024):F0} | {heldAll / (1024.0 * 1024):F0} | {n} | {attention} | {ms:F1} | {perSecond:F0} | {(one > 0 ? $"{perSecond / one:F1}x" : "-")} |"));
            }
        }
        finally
        {
            caches.ForEach(c => c.Dispose());
        }

        return rows;
    }

    /// <summary>A report section: its title, what it measures, and a table of the rows.</summary>
    private static void AppendTable(StringBuilder report, string title, string description, string header, string alignment, IEnumerable<string> rows)
    {
        report.AppendLine();
        report.AppendLine($"### {title}");
        report.AppendLine();
        report.AppendLine(description);
        report.AppendLine();
        report.AppendLine(header);
        report.AppendLine(alignment);
        foreach (var row in rows)
        {
            report.AppendLine(row);
        }
    }

    /// <summary>
    /// Per-stream first-token latency when N streams arrive at once, each with a question about its own remembered video
    /// (its conversation's cache), served as <see cref="GenerationScheduler.Step"/> serves them: each step prefills one
    /// arriving stream's question over its cache, advances the streams that joined before it by one batched decode step,
    /// then emits the arriving stream's first token. Latency = arrival (all at once) to that first token.
    /// </summary>
    private static IEnumerable<string> MeasureArrivals(LlavaOnevisionModel model, IBatchedDecoder decoder, List<ModelKVCache> caches, string label, int[] streams, Device dev, bool onCuda)
    {
        var counts = streams.Where(n => n <= caches.Count).ToList();
        if (streams.Any(n => n > caches.Count))
        {
            counts.Add(caches.Count);
        }

        var rows = new List<string>();
        foreach (int n in counts.Distinct().Order())
        {
            using var questionsScope = NewDisposeScope();
            var first = new double[n];
            var joined = new List<ModelKVCache>();
            BenchRandom.Seed(5);
            var questions = Enumerable.Range(0, n).Select(_ => randint(1000, 100000, [1, QuestionTokens], device: dev)).ToArray();
            ModelDecodeBenchmark.Sync(onCuda);
            var clock = Stopwatch.StartNew();
            for (int k = 0; k < n; k++)
            {
                using var scope = NewDisposeScope();
                var logits = model.Logits(model.Forward(new DecoderInput(model.Embed(questions[k])) { Cache = caches[k] }).select(1, -1));
                var token = logits.argmax(-1);
                if (joined.Count > 0)
                {
                    var ids = randint(1000, 100000, [joined.Count, 1], device: dev);
                    var hidden = decoder.ForwardDecodeBatch(model.Embed(ids), new Tensor?[joined.Count], joined.ToArray(), rowWise: false);
                    model.Logits(hidden.select(1, -1)).argmax(-1).cpu();
                }

                token.cpu();
                first[k] = clock.Elapsed.TotalMilliseconds;
                joined.Add(caches[k]);
            }

            Array.Sort(first);
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {n} | {first[0]:F0} | {first[n / 2]:F0} | {first[^1]:F0} |"));
            Console.Error.WriteLine(rows[^1]);
        }

        return rows;
    }

    /// <summary>The batched step's parts (<see cref="StepProfile"/>), host-only and synchronized, as report rows.</summary>
    private static IEnumerable<string> ProfileSteps(LlavaOnevisionModel model, IBatchedDecoder decoder, ModelKVCache[] active, int steps, string label, Device dev, bool onCuda)
    {
        int n = active.Length;
        var runs = new[] { new StepProfile(synchronize: false), new StepProfile(synchronize: onCuda) };
        for (int step = 0; step < steps; step++)
        {
            foreach (var profile in runs)
            {
                using var scope = NewDisposeScope();
                var ids = randint(1000, 100000, [n, 1], device: dev);
                ModelDecodeBenchmark.Sync(onCuda);
                StepProfile.Current = profile;
                try
                {
                    profile.Start();
                    var hidden = decoder.ForwardDecodeBatch(model.Embed(ids), new Tensor?[n], active, rowWise: false);
                    model.Logits(hidden.select(1, -1)).argmax(-1).cpu();
                    profile.Mark("embedding, final norm, logits");
                }
                finally
                {
                    StepProfile.Current = null;
                }
            }
        }

        var synced = runs[1].Parts.ToDictionary(p => p.Part, p => p.Ms);
        double hostTotal = 0, syncTotal = 0;
        foreach (var (part, ms) in runs[0].Parts)
        {
            double s = synced.GetValueOrDefault(part);
            hostTotal += ms;
            syncTotal += s;
            yield return string.Create(CultureInfo.InvariantCulture, $"| {label} | {n} | {part} | {ms / steps:F2} | {s / steps:F2} |");
        }

        yield return string.Create(CultureInfo.InvariantCulture, $"| {label} | {n} | **step** | {hostTotal / steps:F2} | {syncTotal / steps:F2} |");
    }


}
