using System.Diagnostics;
using System.Globalization;
using System.Text;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// The CPU prefill of a first question about a clip with the 0.5B-geometry checkpoint of 'load' (bf16): time to first token
/// as the memory benchmark measures it, then the same work cut into its parts, each timed alone: decoding and
/// preprocessing, the vision tower, projector and pooling, the embeddings, the decoder without a cache and with the
/// compressed cache (the difference is the cache's quantization).
/// </summary>
internal static class PrefillBenchmark
{
    public static int Run(string commandLine, int frames, int repeats, bool parts, bool opsOnly, string? outPath)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frames);
        ArgumentOutOfRangeException.ThrowIfNegative(repeats);
        TorchRuntime.EnsureLoaded();
        string work = Directory.CreateTempSubdirectory("vidkv-prefill-bench-").FullName;
        var report = new StringBuilder();
        void Line(string text)
        {
            Console.WriteLine(text);
            report.AppendLine(text);
        }

        try
        {
            string clip = Path.Combine(work, "clip.mp4");
            MemoryBenchmark.MakeClip(clip);
            Line($"Command: `{commandLine}`");
            Line($"Machine: {Machine.Description}; {TorchRuntime.Description}; {get_num_threads()} intra-op threads");
            Line($"Model: 0.5B geometry (random weights, bf16), {frames} frames of testsrc2 640x360 (20 s at 25 fps). Cache: vidkv-1.5/1.58 Compact.");
            Line(string.Empty);
            var cacheOptions = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
            using var model = MemoryBenchmark.LoadModel("0.5b");
            var request = MemoryBenchmark.Ask(clip, new FrameSamplingOptions { FrameCount = frames }, "What happens in this video?");
            var ttft = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                model.ConfigureVideoMemory(new VideoMemoryOptions());
                // On a thread of its own, as the connector's inference worker runs requests (glibc serves the main thread
                // and the others from different heaps: see NativeHeap).
                (double Seconds, GenerationUsage? Usage) result = default;
                var worker = new Thread(() => result = MemoryBenchmark.Ttft(model, request, cacheOptions), 16 << 20) { Name = "prefill worker" };
                worker.Start();
                worker.Join();
                var (seconds, usage) = result;
                ttft.Add(seconds);
                Line(string.Create(CultureInfo.InvariantCulture, $"first question TTFT, run {r + 1}: {seconds:F2} s ({usage!.PromptTokens} prompt tokens)"));
            }

            if (ttft.Count > 0)
            {
                Line(string.Create(CultureInfo.InvariantCulture, $"first question TTFT, median of {ttft.Count}: {Median(ttft):F2} s"));
            }

            if (parts)
            {
                Line(string.Empty);
                Parts(model, request, cacheOptions, Line);
            }
            else if (opsOnly)
            {
                var media = model.Decode(request, CancellationToken.None);
                Line(string.Empty);
                Ops(model.Model.Config, media.Videos[0].shape[0], model.Layout(request, media).Ids.Count, cacheOptions, Line);
            }

            if (outPath is not null)
            {
                Machine.WriteReport(outPath, report.ToString());
            }

            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static void Parts(LlavaOnevisionVideoModel model, ChatRequest request, KVCacheOptions cacheOptions, Action<string> line)
    {
        using var scope = NewDisposeScope();
        var m = model.Model;
        var rows = new List<(string Part, double Seconds, double Tflop)>();
        T Time<T>(string part, double tflop, Func<T> f)
        {
            var clock = Stopwatch.StartNew();
            var result = f();
            rows.Add((part, clock.Elapsed.TotalSeconds, tflop));
            return result;
        }

        var media = Time("decode + preprocess (ffmpeg)", 0, () => model.Decode(request, CancellationToken.None));
        var layout = model.Layout(request, media);
        var pixels = media.Videos[0];
        long f = pixels.shape[0];
        var v = m.Config.Vision;
        long p = (long)v.PatchesPerSide * v.PatchesPerSide;
        int visionLayers = m.Config.VisionFeatureLayer < 0 ? v.NumLayers + 1 + m.Config.VisionFeatureLayer : m.Config.VisionFeatureLayer;
        double visionFlop = f * visionLayers * ((2.0 * p * ((4.0 * v.HiddenSize * v.HiddenSize) + (2.0 * v.HiddenSize * v.IntermediateSize))) + (4.0 * p * p * v.HiddenSize));
        var features = Time("vision tower", visionFlop / 1e12, () => m.VisionFeatures(pixels));
        var pooled = Time("projector + pooling", 0, () => m.Pool(m.Project(features)));
        var embeds = Time("embeddings + merge", 0, () =>
        {
            var ids = tensor(layout.Ids.Select(i => (long)i).ToArray()).reshape(1, -1);
            var newline = m.get_parameter("image_newline") ?? throw new InvalidOperationException("The model has no image_newline.");
            var video = cat(new[] { pooled.reshape(-1, pooled.shape[^1]), newline.unsqueeze(0) }, 0);
            return m.MergeVisual(ids, m.Embed(ids), video, null);
        });
        var t = m.Config.Text;
        long n = embeds.shape[1];
        double decoderFlop = t.NumLayers * ((2.0 * n * ((long)t.HiddenSize * (t.NumHeads + (2 * t.NumKeyValueHeads)) * t.HeadDim + ((long)t.NumHeads * t.HeadDim * t.HiddenSize) + (3L * t.HiddenSize * t.IntermediateSize)))
            + (2.0 * n * n * t.NumHeads * t.HeadDim));
        Time("decoder prefill, no cache", decoderFlop / 1e12, () => m.Forward(new DecoderInput(embeds)));
        using var cache = m.CreateCache(cacheOptions);
        Time("decoder prefill into the vidkv-1.5/1.58 cache", decoderFlop / 1e12, () => m.Forward(new DecoderInput(embeds) { Cache = cache }));
        line($"Parts ({n} prompt tokens, {f} frames; each part timed alone; TFLOP counts matrix products and attention):");
        line(string.Empty);
        line("| part | seconds | TFLOP | TFLOP/s |");
        line("|---|---:|---:|---:|");
        foreach (var (part, seconds, tflop) in rows)
        {
            line(string.Create(CultureInfo.InvariantCulture, $"| {part} | {seconds:F2} | {(tflop > 0 ? tflop.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {(tflop > 0 ? (tflop / seconds).ToString("F2", CultureInfo.InvariantCulture) : "-")} |"));
        }

        line(string.Empty);
        Ops(m.Config, f, n, cacheOptions, line);
    }

    /// <summary>One layer's operations of the vision tower and of the decoder at the prefill's shapes, each timed alone.</summary>
    private static void Ops(LlavaOnevisionConfig config, long frames, long tokens, KVCacheOptions cacheOptions, Action<string> line)
    {
        using var scope = NewDisposeScope();
        var rows = new List<(string Op, double Seconds, double Gflop)>();
        var bf = ScalarType.BFloat16;
        void Time(string op, double gflop, Func<Tensor> f)
        {
            using var s = NewDisposeScope();
            f();
            var clock = Stopwatch.StartNew();
            f();
            rows.Add((op, clock.Elapsed.TotalSeconds, gflop));
        }

        var v = config.Vision;
        long p = (long)v.PatchesPerSide * v.PatchesPerSide, d = v.HiddenSize, inner = v.IntermediateSize, heads = v.NumHeads, hd = d / heads;
        var x = randn(frames, p, d).to(bf);
        var w = randn(d, d).mul(0.02).to(bf);
        var b = zeros(d).to(bf);
        var w1 = randn(inner, d).mul(0.02).to(bf);
        var b1 = zeros(inner).to(bf);
        var w2 = randn(d, inner).mul(0.02).to(bf);
        var ones1 = ones(d).to(bf);
        double tok = frames * p;
        Time("vision: layer norm", 0, () => nn.functional.layer_norm(x, new[] { d }, ones1, b, 1e-6));
        Time("vision: one d x d projection (of 4)", 2 * tok * d * d / 1e9, () => nn.functional.linear(x, w, b));
        var q = x.view(frames, p, heads, hd).transpose(1, 2);
        Time("vision: attention (sdpa)", 4 * frames * p * p * d / 1e9, () => nn.functional.scaled_dot_product_attention(q, q, q));
        Time("vision: attention (sdpa, contiguous heads)", 4 * frames * p * p * d / 1e9, () =>
        {
            var c = q.contiguous();
            return nn.functional.scaled_dot_product_attention(c, c, c);
        });
        Time("vision: attention, sdpa per frame", 4 * frames * p * p * d / 1e9, () =>
        {
            for (long i = 0; i < frames; i++) { using var s2 = NewDisposeScope(); var c = q.narrow(0, i, 1); nn.functional.scaled_dot_product_attention(c, c, c); }
            return q;
        });
        Time("vision: attention, bf16 matmul-softmax-matmul per frame", 4 * frames * p * p * d / 1e9, () =>
        {
            for (long i = 0; i < frames; i++) { using var s2 = NewDisposeScope(); var c = q.narrow(0, i, 1); matmul(matmul(c, c.transpose(2, 3)).mul(0.1).softmax(-1), c); }
            return q;
        });
        Time("vision: attention, the model's path (Attention.GroupedAttention)", 4 * frames * p * p * d / 1e9, () => VidKV.AI.Backend.Models.Layers.Attention.GroupedAttention(q, q, q, causal: false));
        Time("vision: attention, float32 sdpa per frame", 4 * frames * p * p * d / 1e9, () =>
        {
            for (long i = 0; i < frames; i++) { using var s2 = NewDisposeScope(); var c = q.narrow(0, i, 1).to(ScalarType.Float32); nn.functional.scaled_dot_product_attention(c, c, c); }
            return q;
        });
        Time("vision: mlp (fc1, gelu, fc2) whole", 4 * tok * d * inner / 1e9, () => nn.functional.linear(nn.functional.gelu(nn.functional.linear(x, w1, b1), TorchSharp.Modules.GELU.Approximate.tanh), w2, b));
        Time("vision: mlp per frame", 4 * tok * d * inner / 1e9, () =>
        {
            for (long i = 0; i < frames; i++) { using var s2 = NewDisposeScope(); nn.functional.linear(nn.functional.gelu(nn.functional.linear(x.narrow(0, i, 1), w1, b1), TorchSharp.Modules.GELU.Approximate.tanh), w2, b); }
            return q;
        });
        Time("vision: fc1", 2 * tok * d * inner / 1e9, () => nn.functional.linear(x, w1, b1));
        var h = nn.functional.linear(x, w1, b1);
        Time("vision: gelu (tanh)", 0, () => nn.functional.gelu(h, TorchSharp.Modules.GELU.Approximate.tanh));
        Time("vision: fc2", 2 * tok * d * inner / 1e9, () => nn.functional.linear(h, w2, b));
        Time("vision: residual add", 0, () => x.add(x));

        var t = config.Text;
        long dt = t.HiddenSize, ht = t.NumHeads, hkv = t.NumKeyValueHeads, hdt = t.HeadDim, it = t.IntermediateSize, g = ht / hkv;
        var xt = randn(1, tokens, dt).to(bf);
        var wq = randn(ht * hdt, dt).mul(0.02).to(bf);
        var wk = randn(hkv * hdt, dt).mul(0.02).to(bf);
        var bq = zeros(ht * hdt).to(bf);
        var bk = zeros(hkv * hdt).to(bf);
        var wg = randn(it, dt).mul(0.02).to(bf);
        var wd = randn(dt, it).mul(0.02).to(bf);
        Time("decoder: rms norm (float32 inside)", 0, () =>
        {
            var xf = xt.to(ScalarType.Float32);
            return (ones(dt).to(bf) * (xf * xf.mul(xf).mean(new[] { -1L }, keepdim: true).add(1e-6).rsqrt()).to(bf));
        });
        Time("decoder: q projection", 2.0 * tokens * dt * ht * hdt / 1e9, () => nn.functional.linear(xt, wq, bq));
        Time("decoder: k projection (v the same)", 2.0 * tokens * dt * hkv * hdt / 1e9, () => nn.functional.linear(xt, wk, bk));
        var qt = nn.functional.linear(xt, wq, bq).view(1, tokens, ht, hdt).transpose(1, 2);
        var kt = nn.functional.linear(xt, wk, bk).view(1, tokens, hkv, hdt).transpose(1, 2);
        var tables = VidKV.AI.Backend.Models.Layers.RotaryEmbedding.Tables(arange(tokens), (int)hdt, t.RopeTheta);
        Time("decoder: rotary (q)", 0, () => VidKV.AI.Backend.Models.Layers.RotaryEmbedding.Apply(qt, tables));
        var qr = VidKV.AI.Backend.Models.Layers.RotaryEmbedding.Apply(qt, tables);
        var kr = VidKV.AI.Backend.Models.Layers.RotaryEmbedding.Apply(kt, tables);
        double attnFlop = 2.0 * tokens * tokens * ht * hdt / 1e9;
        Time("decoder: causal attention, repeat_interleave + sdpa", attnFlop, () => nn.functional.scaled_dot_product_attention(qr, kr.repeat_interleave(g, 1), kr.repeat_interleave(g, 1), null, 0.0, true));
        Time("decoder: causal attention, sdpa per kv head (expanded keys)", attnFlop, () =>
        {
            var outs = new List<Tensor>();
            for (long j = 0; j < hkv; j++)
            {
                var kj = kr.narrow(1, j, 1).expand(1, g, tokens, hdt);
                outs.Add(nn.functional.scaled_dot_product_attention(qr.narrow(1, j * g, g), kj, kj, null, 0.0, true));
            }
            return cat(outs, 1);
        });
        Time("decoder: causal attention, the model's path (Attention.GroupedAttention)", attnFlop, () => VidKV.AI.Backend.Models.Layers.Attention.GroupedAttention(qr, kr, kr, causal: true));
        Time("decoder: causal attention, float32 sdpa", attnFlop, () => nn.functional.scaled_dot_product_attention(qr.to(ScalarType.Float32), kr.repeat_interleave(g, 1).to(ScalarType.Float32), kr.repeat_interleave(g, 1).to(ScalarType.Float32), null, 0.0, true));
        Time("decoder: mlp whole", 6.0 * tokens * dt * it / 1e9, () => nn.functional.linear(nn.functional.silu(nn.functional.linear(xt, wg)) * nn.functional.linear(xt, wg), wd));
        Time("decoder: mlp in 512-token chunks, in place", 6.0 * tokens * dt * it / 1e9, () =>
        {
            for (long i = 0; i < tokens; i += 512) { using var s2 = NewDisposeScope(); var c = xt.narrow(1, i, Math.Min(512, tokens - i)); nn.functional.linear(nn.functional.silu(nn.functional.linear(c, wg), true).mul_(nn.functional.linear(c, wg)), wd); }
            return xt;
        });
        Time("decoder: o projection", 2.0 * tokens * dt * ht * hdt / 1e9, () => nn.functional.linear(qr.transpose(1, 2).reshape(1, tokens, ht * hdt), wq));
        Time("decoder: gate projection (up the same)", 2.0 * tokens * dt * it / 1e9, () => nn.functional.linear(xt, wg));
        var gt = nn.functional.linear(xt, wg);
        Time("decoder: silu * up", 0, () => nn.functional.silu(gt) * gt);
        Time("decoder: down projection", 2.0 * tokens * dt * it / 1e9, () => nn.functional.linear(gt, wd));
        Time("decoder: cache prefill (quantize keys and values)", 0, () =>
        {
            using var cache = new QuantizedKVCache(cacheOptions);
            cache.Prefill(kr, kr);
            return kr;
        });

        {
            var o = cacheOptions;
            int gs = o.GroupSize;
            long qn = tokens - (tokens % gs);
            var keys = kr.narrow(2, 0, qn);
            var sign = new VidKV.AI.Quantization.Quantizers.SignQuantizer(VidKV.AI.Quantization.Quantizers.QuantizationAxis.PerChannel, gs, o.SignReconstruction, o.MetadataType, storeZeroPoint: o.ReferenceMetadata);
            var outlier = new VidKV.AI.Quantization.Quantizers.AsymmetricQuantizer(o.OutlierBits, VidKV.AI.Quantization.Quantizers.QuantizationAxis.PerChannel, gs, o.MetadataType);
            var oneBit = new VidKV.AI.Quantization.Quantizers.OneBitKeyQuantizer(o.OneBitKeys, sign);
            var selector = new VidKV.AI.Quantization.Quantizers.KeyChannelSelector(o.ChannelStatistic, o.OutlierThreshold);
            var mixed = new VidKV.AI.Quantization.Quantizers.MixedPrecisionKeyQuantizer(o.KeyBits, outlier, oneBit, selector);
            var (oi, ei) = selector.Select(keys, mixed.OutlierCount(keys.shape[^1]));
            Time("decoder cache: key channel selection", 0, () => selector.Select(keys, mixed.OutlierCount(keys.shape[^1])).Outliers);
            Time("decoder cache: outlier key channels (2-bit)", 0, () => { outlier.Quantize(keys.index_select(-1, oi)); return oi; });
            Time("decoder cache: 1-bit key channels", 0, () => { oneBit.Quantize(keys.index_select(-1, ei)); return oi; });
            var ternary = new VidKV.AI.Quantization.Quantizers.TernaryQuantizer(o.ValueAxis, gs, o.TernaryGamma, o.ScaledTernary, o.TernaryPacking, o.MetadataType, referenceMetadata: o.ReferenceMetadata && !o.ScaledTernary);
            Time("decoder cache: ternary values", 0, () => { ternary.Quantize(keys); return oi; });
        }

        line($"One layer's operations at the prefill's shapes ({frames} frames x {p} patches in the vision tower, {tokens} tokens in the decoder), each timed alone after a warm-up run:");
        line(string.Empty);
        line("| operation | ms | GFLOP | GFLOP/s |");
        line("|---|---:|---:|---:|");
        foreach (var (op, seconds, gflop) in rows)
        {
            line(string.Create(CultureInfo.InvariantCulture, $"| {op} | {seconds * 1e3:F1} | {(gflop > 0 ? gflop.ToString("F1", CultureInfo.InvariantCulture) : "-")} | {(gflop > 0 ? (gflop / seconds).ToString("F0", CultureInfo.InvariantCulture) : "-")} |"));
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(x => x).ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
