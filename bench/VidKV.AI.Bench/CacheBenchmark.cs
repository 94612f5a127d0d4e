using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>Settings of the cache benchmark; the defaults are LLaVA-OneVision-7B's cache geometry.</summary>
internal sealed record CacheBenchmarkSettings
{
    public int Tokens { get; init; } = 16384;

    public int Layers { get; init; } = 28;

    public int KvHeads { get; init; } = 4;

    public int QHeads { get; init; } = 28;

    public int HeadDim { get; init; } = 128;

    public int Queries { get; init; } = 8;

    public long Seed { get; init; }

    public string? Out { get; init; }

    /// <summary>"cpu" or "cuda" (CUDA through the libtorch of a PyTorch install: set VIDKV_LIBTORCH).</summary>
    public string Device { get; init; } = "cpu";
}

/// <summary>
/// Builds a <see cref="QuantizedKVCache"/> per layer for every preset and profile on the same synthetic keys and
/// values, and reports the bytes held, the reconstruction and attention errors, and the prefill (quantize) throughput.
/// Layers are processed one at a time, so memory stays at one layer's inputs plus one cache.
/// </summary>
internal sealed class CacheBenchmark
{
    private const int OutlierChannels = 8;
    private const double OutlierScale = 10.0;
    private const double VideoFraction = 0.9;
    private const int WarmupTokens = 256;

    private readonly CacheBenchmarkSettings _s;

    public CacheBenchmark(CacheBenchmarkSettings settings) => _s = settings;

    /// <summary>One configuration measured: a preset in a profile, possibly changed.</summary>
    private sealed record Variant(string Profile, string Label, KVCacheOptions Options);

    /// <summary>Sums over layers of one variant.</summary>
    private sealed class Totals
    {
        public CacheMemory Memory;
        public double ErrK, ErrV, ErrAttention, ErrPeaked, PrefillSeconds;
        public long Elements, Tokens;
        public int Layers;
    }

    public int Run(string commandLine)
    {
        if (_s.Device == "cuda")
        {
            Machine.RequireCuda();
        }

        var variants = Variants();
        var totals = variants.Select(_ => new Totals()).ToArray();
        var wall = Stopwatch.StartNew();

        Warmup(variants);
        for (int layer = 0; layer < _s.Layers; layer++)
        {
            MeasureLayer(layer, variants, totals);
            Console.Error.WriteLine($"layer {layer + 1}/{_s.Layers} done, {wall.Elapsed.TotalSeconds:F1} s");
        }

        wall.Stop();
        string table = Table(variants, totals);
        Console.WriteLine(table);
        Console.Error.WriteLine($"total {wall.Elapsed.TotalSeconds:F1} s, peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB");
        if (_s.Out is not null)
        {
            Machine.WriteReport(_s.Out, Report(commandLine, table, wall.Elapsed));
        }

        return 0;
    }

    private static List<Variant> Variants()
    {
        var list = new List<Variant>();
        foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
        {
            foreach (string preset in KVCacheOptions.PresetNames)
            {
                list.Add(new Variant(profile.ToString(), preset, KVCacheOptions.FromPreset(preset, profile)));
            }
        }

        var compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
        list.Add(new Variant(nameof(CacheProfile.Compact), "vidkv-1.5/1.58 per-token values", compact with { ValueAxis = QuantizationAxis.PerToken }));
        list.Add(new Variant(nameof(CacheProfile.Compact), "vidkv-1.5/1.58 scaled ternary", compact with { ScaledTernary = true }));
        list.Add(new Variant(nameof(CacheProfile.Compact), "vidkv-1.5/1.58 ±s signs", compact with { SignReconstruction = SignReconstruction.PlusMinusScale }));
        list.Add(new Variant(nameof(CacheProfile.Compact), "vidkv-1.5/1.58 ±s signs, scaled ternary", compact with { SignReconstruction = SignReconstruction.PlusMinusScale, ScaledTernary = true }));
        return list;
    }

    /// <summary>Runs every code path once on a small input, so the first timed layer does not pay for it.</summary>
    private void Warmup(IReadOnlyList<Variant> variants)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(_s.Seed);
        var data = MakeLayer(WarmupTokens);
        foreach (var v in variants)
        {
            using var inner = NewDisposeScope();
            using var cache = new QuantizedKVCache(v.Options);
            cache.Prefill(data.Keys, data.Values, data.Importance);
            cache.Append(data.DecodeKeys, data.DecodeValues);
            _ = cache.GetKeysValues();
            _ = cache.Attend(data.Queries);
        }
    }

    private void MeasureLayer(int layer, IReadOnlyList<Variant> variants, Totals[] totals)
    {
        using var scope = NewDisposeScope();

        // Reseeded per layer: a layer's data does not depend on --layers or on what ran before.
        random.manual_seed(unchecked((_s.Seed * 10_007) + layer));
        var data = MakeLayer(_s.Tokens);
        var allKeys = cat(new[] { data.Keys, data.DecodeKeys }, 2);
        var allValues = cat(new[] { data.Values, data.DecodeValues }, 2);
        var reference = ReferenceAttention.Attend(data.Queries, allKeys, allValues);
        var peakedReference = ReferenceAttention.Attend(data.PeakedQueries, allKeys, allValues);
        long elements = data.Keys.numel() + data.Values.numel();

        for (int i = 0; i < variants.Count; i++)
        {
            using var inner = NewDisposeScope();
            using var cache = new QuantizedKVCache(variants[i].Options);
            var watch = Stopwatch.StartNew();
            cache.Prefill(data.Keys, data.Values, data.Importance);
            Synchronize();
            watch.Stop();
            cache.Append(data.DecodeKeys, data.DecodeValues);

            var t = totals[i];
            t.Memory += cache.Memory;
            t.PrefillSeconds += watch.Elapsed.TotalSeconds;
            t.Elements += elements;
            t.Tokens = cache.Length;
            t.Layers++;

            var (k, v) = cache.GetKeysValues();
            t.ErrK += RelativeError(k, allKeys);
            t.ErrV += RelativeError(v, allValues);
            t.ErrAttention += RelativeError(cache.Attend(data.Queries), reference);
            t.ErrPeaked += RelativeError(cache.Attend(data.PeakedQueries), peakedReference);
        }
    }

    /// <summary>
    /// One layer's synthetic inputs, from the current global seed, shaped like real ones. Keys: a per-channel offset plus
    /// N(0, 1) times a log-normal per-channel scale; <see cref="OutlierChannels"/> random channels have an offset
    /// <see cref="OutlierScale"/>x larger (post-RoPE keys' outlier channels are mostly a large, steady magnitude).
    /// Values: a per-channel mean plus N(0, 1) times a log-normal per-channel scale. All fp16. Two query sets:
    /// random N(0, 1) queries (broad attention) and "peaked" queries, each a copy of a random cached key plus noise
    /// (attention concentrated on a few tokens, as for a question about one moment of a video).
    /// </summary>
    private (Tensor Keys, Tensor Values, Tensor DecodeKeys, Tensor DecodeValues, Tensor Importance, Tensor Queries, Tensor PeakedQueries) MakeLayer(long tokens)
    {
        long h = _s.KvHeads, d = _s.HeadDim;
        var keyScale = (randn(d) * 0.5).exp();
        var keyOffset = randn(d) * 0.5;
        var outliers = randperm(d).narrow(0, 0, Math.Min(OutlierChannels, d));
        keyOffset.index_copy_(0, outliers, randn(outliers.shape[0]) * OutlierScale);
        var valueScale = (randn(d) * 0.3).exp();
        var valueMean = randn(d) * 0.5;

        Tensor Keys(long n) => ((randn(1, h, n, d) * keyScale) + keyOffset).to(ScalarType.Float16);
        Tensor Values(long n) => ((randn(1, h, n, d) * valueScale) + valueMean).to(ScalarType.Float16);

        var keys = Keys(tokens);
        var values = Values(tokens);
        var decodeKeys = Keys(1);
        var decodeValues = Values(1);

        // Importance scores for the "video" tokens; NaN marks the text after it, which is never protected.
        long video = (long)(tokens * VideoFraction);
        var importance = cat(new[] { randn(video), full(tokens - video, double.NaN, ScalarType.Float32) }, 0);
        var queries = randn(1, _s.QHeads, _s.Queries, d);
        var picked = keys.to(ScalarType.Float32).index_select(2, randint(0, tokens, new long[] { _s.Queries }))
            .repeat_interleave(_s.QHeads / h, 1);
        var peaked = picked + (randn(1, _s.QHeads, _s.Queries, d) * 0.5);
        // Made on the CPU from the seed, so every device sees the same numbers.
        var device = torch.device(_s.Device);
        return (keys.to(device), values.to(device), decodeKeys.to(device), decodeValues.to(device), importance.to(device), queries.to(device), peaked.to(device));
    }

    private static string GpuName()
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi);
            string name = p?.StandardOutput.ReadToEnd().Trim() ?? string.Empty;
            p?.WaitForExit();
            return name.Length > 0 ? name : "CUDA device";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "CUDA device";
        }
    }

    /// <summary>Waits for queued GPU work, so that a clock read after it measures the work.</summary>
    private void Synchronize()
    {
        if (_s.Device == "cuda")
        {
            cuda.synchronize();
        }
    }

    /// <summary>||actual - expected||_F / ||expected||_F; differences in float32, sums in float64.</summary>
    private static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var e = expected.to(ScalarType.Float32);
        var diff = actual.to(ScalarType.Float32) - e;
        double num = diff.to(ScalarType.Float64).square().sum().item<double>();
        double den = e.to(ScalarType.Float64).square().sum().item<double>();
        return Math.Sqrt(num / den);
    }

    private static string Table(IReadOnlyList<Variant> variants, Totals[] totals)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| profile | preset | quantized bits/elem | total bits/elem | MiB per 1k tokens | ratio to FP16 | rel err K | rel err V | rel err attention (random q) | rel err attention (peaked q) | quantize Melem/s |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int i = 0; i < variants.Count; i++)
        {
            var t = totals[i];
            var m = t.Memory;
            double mibPer1k = m.TotalBytes / (t.Tokens / 1000.0) / (1 << 20);
            sb.Append(CultureInfo.InvariantCulture,
                $"| {variants[i].Profile} | {variants[i].Label} | {(m.QuantizedElements == 0 ? "-" : F(m.QuantizedBitsPerElement, 3))} | {F(m.BitsPerElement, 3)} | {F(mibPer1k, 3)} | {F(m.RatioToFp16, 4)} | ")
              .Append(CultureInfo.InvariantCulture,
                $"{F(t.ErrK / t.Layers, 4)} | {F(t.ErrV / t.Layers, 4)} | {F(t.ErrAttention / t.Layers, 4)} | {F(t.ErrPeaked / t.Layers, 4)} | {F(t.Elements / t.PrefillSeconds / 1e6, 1)} |")
              .AppendLine();
        }

        return sb.ToString().TrimEnd();
    }

    private static string F(double x, int decimals) => x.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private string Report(string commandLine, string table, TimeSpan elapsed)
    {
        var s = _s;
        var sb = new StringBuilder();
        sb.AppendLine("# KV cache benchmark").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- TorchSharp native layer: {TorchRuntime.Description}; {torch.get_num_threads()} intra-op threads; device {_s.Device}{(_s.Device == "cuda" ? $" ({GpuName()})" : string.Empty)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Geometry: {s.Layers} layers, batch 1, {s.KvHeads} KV heads, {s.QHeads} query heads, head dim {s.HeadDim}, {s.Tokens} prefilled tokens + 1 decode token per layer (the residual), seed {s.Seed}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Wall time: {elapsed.TotalSeconds:F1} s (warm-up, data generation, {s.Layers} x {Variants().Count} caches, errors and attention)");
        sb.AppendLine();
        sb.AppendLine("Inputs (synthetic, fp16, fresh per layer, identical for every row): keys = per-channel offset + N(0, 1) x log-normal per-channel scale,");
        sb.AppendLine(CultureInfo.InvariantCulture, $"where {OutlierChannels} random channels per layer have a {OutlierScale:0}x larger offset (the steady outlier channels of post-RoPE keys);");
        sb.AppendLine("values = per-channel mean + N(0, 1) x log-normal per-channel scale. Random queries are N(0, 1); peaked queries are copies of random cached keys plus N(0, 0.5) noise.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Prefill importance scores: N(0, 1) for the first {VideoFraction:P0} of tokens (video), NaN for the rest (text).");
        sb.AppendLine();
        sb.AppendLine("Columns: bits per element and bytes are measured from the tensors the caches hold (cache.Memory summed over layers);");
        sb.AppendLine("\"quantized\" excludes the full-precision residual, \"total\" includes it. MiB per 1k tokens covers all layers, K and V.");
        sb.AppendLine("Relative errors are Frobenius norms against the fp16 inputs, averaged over layers; attention is");
        sb.AppendLine(CultureInfo.InvariantCulture, $"cache.Attend(q) vs ReferenceAttention.Attend(q, K, V) for {s.Queries} random and {s.Queries} peaked decode queries per layer.");
        sb.AppendLine("Quantize throughput is K+V elements over the time of cache.Prefill (all layers; the device synchronized before the clock is read), after a warm-up.");
        sb.AppendLine();
        sb.AppendLine(table);
        return sb.ToString();
    }
}
