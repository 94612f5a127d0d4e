using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// <c>vidkv-bench op-hashes</c>: which operation of the decoder's path gives other bits for the same input? Each operation
/// of a 7B-geometry decode (cuBLAS projections, grouped-query SDPA at prefill, the layer kernels, the cache's prefill,
/// appends and attention, two whole decoder layers) runs on fixed seeded inputs several times in this process; the report
/// gives a hash of the first output's bytes and whether every repeat gave the same bits. Run it in several processes and
/// compare the hash columns (<c>bench/run-determinism-gpu.sh</c> does): an operation whose hash moves between processes,
/// or whose repeats differ, is the one that is not deterministic.
/// </summary>
internal static class OpHashes
{
    public static int Run(string commandLine, string device, int repeats, string? outPath)
    {
        if (device == "cuda")
        {
            Machine.RequireCuda();
        }

        using var noGrad = no_grad();
        var dev = torch.device(device);
        var rows = new List<(string Op, string Hash, int Differing, double MaxDiff)>();

        void Probe(string op, Func<Tensor> f)
        {
            byte[]? first = null;
            Tensor? firstTensor = null;
            int differing = 0;
            double maxDiff = 0;
            try
            {
                for (int i = 0; i < repeats; i++)
                {
                    using var scope = NewDisposeScope();
                    var y = f().to(ScalarType.Float32).contiguous().cpu();
                    var bytes = y.bytes.ToArray();
                    if (first is null)
                    {
                        first = bytes;
                        firstTensor = y.clone().DetachFromDisposeScope();
                        continue;
                    }

                    if (!bytes.AsSpan().SequenceEqual(first))
                    {
                        differing++;
                        maxDiff = Math.Max(maxDiff, (y - firstTensor!).abs().max().item<float>());
                    }
                }
            }
            finally
            {
                firstTensor?.Dispose();
            }

            rows.Add((op, Convert.ToHexString(SHA256.HashData(first!))[..16], differing, maxDiff));
            Console.WriteLine($"{op}: {rows[^1].Hash} ({differing} of {repeats - 1} repeats differ)");
        }

        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var scope = NewDisposeScope();
            BenchRandom.Seed(3);
            var x300 = randn(300, 3584, device: dev).to(type);
            var x1 = randn(1, 3584, device: dev).to(type);
            var h1 = randn(1, 18944, device: dev).to(type);
            var wQkv = (randn(4608, 3584, device: dev) * 0.02).to(type);
            var bQkv = (randn(4608, device: dev) * 0.1).to(type);
            var wUp = (randn(37888, 3584, device: dev) * 0.02).to(type);
            var wDown = (randn(3584, 18944, device: dev) * 0.01).to(type);
            Probe($"{type} linear [300, 3584] x [4608, 3584]^T + bias (fused q, k, v at prefill)", () => nn.functional.linear(x300, wQkv, bQkv));
            Probe($"{type} linear [1, 3584] x [4608, 3584]^T + bias (fused q, k, v at decode)", () => nn.functional.linear(x1, wQkv, bQkv));
            Probe($"{type} linear [1, 3584] x [37888, 3584]^T (gate and up at decode)", () => nn.functional.linear(x1, wUp));
            Probe($"{type} linear [1, 18944] x [3584, 18944]^T (down at decode)", () => nn.functional.linear(h1, wDown));

            var q = randn(1, 28, 300, 128, device: dev).to(type);
            var k = (randn(1, 4, 300, 128, device: dev) * 2).to(type);
            var v = randn(1, 4, 300, 128, device: dev).to(type);
            Probe($"{type} grouped-query SDPA, causal, 28 / 4 heads, 300 tokens (prefill attention)", () => Attention.GroupedAttention(q, k, v, causal: true));

            if (dev.type == DeviceType.CUDA && LayerKernels.Applies(x1, wQkv))
            {
                var norm = (rand(3584, device: dev) + 0.5).to(type);
                Probe($"{type} RMSNorm kernel [300, 3584]", () => LayerKernels.RmsNorm(x300, norm, 1e-6));
                var angles = rand(300, 128, device: dev) * 100;
                var tables = new RotaryTables(angles.cos(), angles.sin());
                var projection = (randn(300, 36 * 128, device: dev) * 2).to(type);
                Probe($"{type} RoPE kernel in place [300, 36 x 128]", () =>
                {
                    var copy = projection.clone();
                    LayerKernels.RotaryInPlace(copy, 300, 32, 128, tables);
                    return copy;
                });
                var gateUp = (randn(1, 2 * 18944, device: dev) * 4).to(type);
                Probe($"{type} SwiGLU kernel [1, 2 x 18944]", () => LayerKernels.SiluMul(gateUp));
            }

            foreach (var preset in new[] { "fp16", "vidkv-1.5/1.58" })
            {
                var options = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
                var steps = Enumerable.Range(0, 30).Select(_ => ((randn(1, 4, 1, 128, device: dev) * 2).to(type), randn(1, 4, 1, 128, device: dev).to(type))).ToArray();
                var query = randn(1, 28, 1, 128, device: dev).to(type);
                QuantizedKVCache Fill(int appends, bool inPlace)
                {
                    var cache = new QuantizedKVCache(options);
                    cache.Prefill(k, v);
                    foreach (var (ks, vs) in steps.Take(appends))
                    {
                        if (inPlace)
                        {
                            QuantizedKVCache.AppendDecodeStep([cache], ks, vs);
                        }
                        else
                        {
                            cache.Append(ks, vs);
                        }
                    }

                    return cache;
                }

                Tensor Contents(QuantizedKVCache cache)
                {
                    using (cache)
                    {
                        var (ck, cv) = cache.GetKeysValues();
                        return cat([ck.to(ScalarType.Float32).flatten(), cv.to(ScalarType.Float32).flatten()], 0);
                    }
                }

                Tensor Attend(QuantizedKVCache cache)
                {
                    using (cache)
                    {
                        return cache.AttendForDecode(query, causal: true);
                    }
                }

                Probe($"{type} {preset} cache: prefill of 300 tokens, keys and values read back", () => Contents(Fill(0, false)));
                Probe($"{type} {preset} cache: prefill and 30 appends (Append), read back", () => Contents(Fill(30, false)));
                Probe($"{type} {preset} cache: prefill and 30 in-place appends (AppendDecodeStep), read back", () => Contents(Fill(30, true)));
                Probe($"{type} {preset} cache: decode attention after prefill", () => Attend(Fill(0, false)));
                Probe($"{type} {preset} cache: decode attention after prefill and 30 appends", () => Attend(Fill(30, false)));
            }
        }

        if (dev.type == DeviceType.CUDA)
        {
            foreach (var preset in new[] { "fp16", "vidkv-1.5/1.58" })
            {
                foreach (var kernels in new[] { true, false })
                {
                    Probe($"Float32 2 decoder layers, 7B geometry, {preset} cache, {(kernels ? "layer kernels" : "TorchSharp ops")}: prefill 300, outputs", () => Decoder(dev, preset, kernels, steps: 0));
                    Probe($"Float32 2 decoder layers, 7B geometry, {preset} cache, {(kernels ? "layer kernels" : "TorchSharp ops")}: prefill 300 + 30 steps, every output", () => Decoder(dev, preset, kernels, steps: 30));
                }
            }
        }

        var sb = new StringBuilder();
        sb.AppendLine("# Operation hashes: the same input, the same bits?").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Device: {device}; each operation run {repeats} times on the same input in this process").AppendLine();
        sb.AppendLine("| operation | hash of the first output | repeats that differ from it | largest difference |");
        sb.AppendLine("|---|---|---:|---:|");
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {r.Op} | {r.Hash} | {r.Differing} of {repeats - 1} | {r.MaxDiff:E2} |");
        }

        Console.WriteLine(sb);
        if (outPath is not null)
        {
            Machine.WriteReport(outPath, sb.ToString());
        }

        return rows.Any(r => r.Differing > 0) ? 1 : 0;
    }

    /// <summary>Two 7B-geometry decoder layers (float32, LayerKernelCheck's seeded weights): every step's output, concatenated.</summary>
    private static Tensor Decoder(Device dev, string preset, bool kernels, int steps)
    {
        var config = ModelDecodeBenchmark.SevenB().Text with { NumLayers = 2 };
        using var decoder = LayerKernelCheck.Random(config, ScalarType.Float32, dev, null);
        using var cache = new ModelKVCache(2, KVCacheOptions.FromPreset(preset, CacheProfile.Compact));
        BenchRandom.Seed(11);
        var outputs = new List<Tensor>();
        LayerKernels.Off = !kernels;
        try
        {
            for (int step = -1; step < steps; step++)
            {
                long t = step < 0 ? 300 : 1;
                var x = randn(1, t, config.HiddenSize, device: dev);
                var positions = step < 0 ? arange(300, device: dev) : tensor(new long[] { 300 + step }, device: dev);
                outputs.Add(decoder.Forward(x, positions, cache.Layers, null, null).flatten());
            }
        }
        finally
        {
            LayerKernels.Off = false;
        }

        return cat(outputs.ToArray(), 0);
    }
}
