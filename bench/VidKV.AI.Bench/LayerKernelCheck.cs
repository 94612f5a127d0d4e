using System.Globalization;
using System.Text;
using TorchSharp;
using VidKV.AI.Backend.Models;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// <c>vidkv-bench layer-check</c>: the CUDA layer kernels (<see cref="LayerKernels"/>) against the TorchSharp operations they
/// replace, on a GPU. Each kernel alone for float32, float16 and bfloat16 (RoPE and SwiGLU bit for bit; RMSNorm within one
/// unit in the last place of the type, its float32 sum being taken in another order); then two decoder layers of
/// LLaVA-OneVision-7B's geometry with random weights, prefill and decode over the FP16 and the vidkv-1.5/1.58 Compact cache:
/// in float32 the two paths agree within 1e-4 (relative to the largest output); in bfloat16, where both round, the kernel
/// path may be no further from the float32 model than the TorchSharp path is (within 25 %).
/// </summary>
internal static class LayerKernelCheck
{
    public static int Run(string commandLine, string? outPath)
    {
        Machine.RequireCuda();
        using var noGrad = no_grad();
        var dev = torch.device("cuda");
        var rows = new List<(string Case, double Value, double Limit)>();

        foreach (var (type, ulp) in new[] { (ScalarType.Float32, 1e-6), (ScalarType.Float16, 1.0 / 1024), (ScalarType.BFloat16, 1.0 / 128) })
        {
            using var scope = NewDisposeScope();
            BenchRandom.Seed(1);
            var weight = (rand(3584, device: dev) + 0.5).to(type);
            var x = (randn(9, 3584, device: dev) * 3).to(type);
            var normed = LayerKernels.RmsNorm(x, weight, 1e-6);
            var xf = x.to(ScalarType.Float32);
            var expected = weight * (xf * (xf.mul(xf).mean([-1L], keepdim: true) + 1e-6).rsqrt()).to(type);
            rows.Add(($"RMSNorm {type}, [9, 3584]: max abs diff / max abs y", Relative(expected, normed), ulp));

            foreach (var (b, t, tableRows) in new[] { (1L, 1L, 1L), (1L, 37L, 37L), (3L, 1L, 3L), (2L, 5L, 10L) })
            {
                var projection = (randn(b, t, 36 * 128, device: dev) * 2).to(type);
                var angles = rand(tableRows, 128, device: dev) * 100;
                var tables = new RotaryTables(angles.cos(), angles.sin());
                var heads = projection.view(b, t, 36, 128).narrow(2, 0, 32).transpose(1, 2); // q (28) and k (4) heads
                var shaped = new RotaryTables(tables.Cos.view(tableRows == t ? 1 : b, 1, t, 128), tables.Sin.view(tableRows == t ? 1 : b, 1, t, 128));
                var reference = RotaryEmbedding.Apply(heads, shaped).transpose(1, 2);
                var untouched = projection.narrow(2, 32 * 128, 4 * 128).clone();
                LayerKernels.RotaryInPlace(projection.view(b * t, 36 * 128), t, 32, 128, tables);
                double diff = (projection.view(b, t, 36, 128).narrow(2, 0, 32).to(ScalarType.Float32) - reference.to(ScalarType.Float32)).abs().max().item<float>();
                double vDiff = (projection.narrow(2, 32 * 128, 4 * 128).to(ScalarType.Float32) - untouched.to(ScalarType.Float32)).abs().max().item<float>();
                rows.Add(($"RoPE in place {type}, B={b} T={t}, {tableRows} table rows: q and k vs RotaryEmbedding.Apply, bit for bit", diff, 0));
                rows.Add(($"RoPE in place {type}, B={b} T={t}: v heads untouched", vDiff, 0));
            }

            var gateUp = (randn(3, 2 * 18944, device: dev) * 4).to(type);
            var act = LayerKernels.SiluMul(gateUp);
            var silu = nn.functional.silu(gateUp.narrow(1, 0, 18944)).mul(gateUp.narrow(1, 18944, 18944));
            rows.Add(($"SwiGLU {type}, [3, 2 x 18944]: vs silu(gate) * up, bit for bit", (act.to(ScalarType.Float32) - silu.to(ScalarType.Float32)).abs().max().item<float>(), 0));
        }

        foreach (var preset in new[] { "fp16", "vidkv-1.5/1.58" })
        {
            var options = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
            var (f32, apart, errOff, errOn, again, againOff, codes) = DecoderErrors(dev, options);
            rows.Add(($"2 layers of 7B geometry, {preset}, float32: kernels vs TorchSharp ops on the same cache (each step's ops run on a fork of the kernel path's cache), prefill 300 + 30 decode steps, max relative", f32, 1e-4));
            if (codes.Total > 0)
            {
                // Run apart, the two paths' keys and values differ by float32 rounding, so a code on a quantization
                // boundary can fall either way (and the outputs then differ by what that code changes): such codes must stay rare.
                rows.Add(($"same, each path on its own cache: quantized codes that differ after the last step ({codes.Differing} of {codes.Total}; outputs' max relative {apart:E2}, not limited), share", (double)codes.Differing / codes.Total, 1e-5));
            }

            rows.Add(($"same, float32 kernel path run twice on fresh caches: max abs diff, bit for bit (first differing step: {again.FirstStep})", again.Diff, 0));
            rows.Add(($"same, float32 TorchSharp-ops path run twice on fresh caches: max abs diff, bit for bit (first differing step: {againOff.FirstStep})", againOff.Diff, 0));
            rows.Add(($"same in bfloat16: kernel path's relative error to the float32 model ({errOn:E2}) over the TorchSharp path's ({errOff:E2})", errOn / errOff, 1.25));
        }

        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            rows.Add(($"in-place appends (AppendDecodeStep) vs Append, {type} keys and values, vidkv-1.5/1.58 Compact, 300 + 200 steps: cached keys and values, bit for bit", InPlaceAppendDifference(dev, type), 0));
        }

        int failed = rows.Count(r => !(r.Value <= r.Limit));
        var sb = new StringBuilder();
        sb.AppendLine("# CUDA layer kernels against the TorchSharp operations they replace").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Kernels: {LayerKernels.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- {rows.Count} comparisons: {rows.Count - failed} within their limit, {failed} beyond").AppendLine();
        sb.AppendLine("| case | value | limit |");
        sb.AppendLine("|---|---:|---:|");
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {r.Case} | {r.Value:E2}{(r.Value <= r.Limit ? string.Empty : " **FAIL**")} | {r.Limit:G3} |");
        }

        Console.WriteLine(sb);
        if (outPath is not null)
        {
            Machine.WriteReport(outPath, sb.ToString());
        }

        return failed == 0 ? 0 : 1;
    }

    /// <summary>Largest difference between a cache fed by <c>Append</c> and one fed by <c>AppendDecodeStep</c> (infinity if their lengths or flushes differ).</summary>
    private static double InPlaceAppendDifference(Device dev, ScalarType type)
    {
        using var scope = NewDisposeScope();
        var options = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
        using var appended = new QuantizedKVCache(options);
        using var inPlace = new QuantizedKVCache(options);
        BenchRandom.Seed(5);
        var k = (randn(1, 4, 300, 128, device: dev) * 2).to(type);
        var v = randn(1, 4, 300, 128, device: dev).to(type);
        appended.Prefill(k, v);
        inPlace.Prefill(k, v);
        for (int step = 0; step < 200; step++)
        {
            using var inner = NewDisposeScope();
            var kr = (randn(1, 4, 1, 128, device: dev) * 2).to(type);
            var vr = randn(1, 4, 1, 128, device: dev).to(type);
            appended.Append(kr, vr);
            QuantizedKVCache.AppendDecodeStep([inPlace], kr, vr);
        }

        if (appended.Length != inPlace.Length || appended.FlushCount != inPlace.FlushCount)
        {
            return double.PositiveInfinity;
        }

        var (ka, va) = appended.GetKeysValues();
        var (kb, vb) = inPlace.GetKeysValues();
        return Math.Max(
            (ka.to(ScalarType.Float32) - kb.to(ScalarType.Float32)).abs().max().item<float>(),
            (va.to(ScalarType.Float32) - vb.to(ScalarType.Float32)).abs().max().item<float>());
    }

    private static double Relative(Tensor expected, Tensor actual)
    {
        var e = expected.to(ScalarType.Float32);
        return (e - actual.to(ScalarType.Float32)).abs().max().item<float>() / Math.Max(1e-30, e.abs().max().item<float>());
    }

    /// <summary>
    /// Two decoder layers of the 7B geometry with one set of random weights: (float32 kernels vs float32 ops, the ops run
    /// each step on a fork of the kernel path's cache as it was before the step, so both read the same codes; the same two
    /// paths each on its own cache (Apart); bf16 ops vs float32;
    /// bf16 kernels vs float32), each the largest relative difference over the prefill's and every decode step's outputs; and
    /// each float32 path run a second time on fresh caches (the largest absolute difference to its first run, and the first
    /// step that differs: -1 is the prefill, "none" where every step matched): a path must give the same bits for the same
    /// input. Codes: the quantized key and value codes (unpacked) that differ between the float32 paths' caches after the
    /// last step, of all they hold: where the two paths' keys and values differ by rounding, a code near a boundary can
    /// fall on either side.
    /// </summary>
    private static (double F32, double Apart, double Bf16Off, double Bf16On, (double Diff, string FirstStep) Again, (double Diff, string FirstStep) AgainOff, (long Differing, long Total) Codes) DecoderErrors(Device dev, KVCacheOptions options)
    {
        var config = ModelDecodeBenchmark.SevenB().Text with { NumLayers = 2 };
        using var reference = Random(config, ScalarType.Float32, dev, null);
        using var fusedF32 = Random(config, ScalarType.Float32, dev, reference);
        using var off16 = Random(config, ScalarType.BFloat16, dev, reference);
        using var on16 = Random(config, ScalarType.BFloat16, dev, reference);
        var caches = Enumerable.Range(0, 6).Select(_ => new ModelKVCache(2, options)).ToArray();
        try
        {
            double f32 = 0, apart = 0, errOff = 0, errOn = 0, again = 0, againOff = 0;
            string first = "none", firstOff = "none";
            for (int step = -1; step < 30; step++)
            {
                using var scope = NewDisposeScope();
                long t = step < 0 ? 300 : 1;
                var x = randn(1, t, config.HiddenSize, device: dev);
                var positions = step < 0 ? arange(300, device: dev) : tensor(new long[] { 300 + step }, device: dev);
                Tensor Run(Qwen2Decoder d, ModelKVCache c, ScalarType type, bool kernels)
                {
                    LayerKernels.Off = !kernels;
                    try
                    {
                        return d.Forward(x.to(type), positions, c.Layers, null, null).to(ScalarType.Float32);
                    }
                    finally
                    {
                        LayerKernels.Off = false;
                    }
                }

                var exact = Run(reference, caches[0], ScalarType.Float32, kernels: false);
                using var same = step < 0 ? new ModelKVCache(2, options) : ForkOf(caches[1]);
                var fused = Run(fusedF32, caches[1], ScalarType.Float32, kernels: true);
                f32 = Math.Max(f32, Relative(Run(reference, same, ScalarType.Float32, kernels: false), fused));
                apart = Math.Max(apart, Relative(exact, fused));
                double d = (Run(fusedF32, caches[4], ScalarType.Float32, kernels: true) - fused).abs().max().item<float>();
                double dOff = (Run(reference, caches[5], ScalarType.Float32, kernels: false) - exact).abs().max().item<float>();
                first = first == "none" && d != 0 ? step.ToString(CultureInfo.InvariantCulture) : first;
                firstOff = firstOff == "none" && dOff != 0 ? step.ToString(CultureInfo.InvariantCulture) : firstOff;
                again = Math.Max(again, d);
                againOff = Math.Max(againOff, dOff);
                errOff = Math.Max(errOff, Relative(exact, Run(off16, caches[2], ScalarType.BFloat16, kernels: false)));
                errOn = Math.Max(errOn, Relative(exact, Run(on16, caches[3], ScalarType.BFloat16, kernels: true)));
            }

            return (f32, apart, errOff, errOn, (again, first), (againOff, firstOff), CodeDifferences(caches[0], caches[1]));
        }
        finally
        {
            foreach (var c in caches)
            {
                c.Dispose();
            }
        }
    }

    /// <summary>A new cache with what <paramref name="cache"/> holds now (its blocks shared, its residual copied).</summary>
    private static ModelKVCache ForkOf(ModelKVCache cache)
    {
        using var snapshot = KVCacheSnapshot.Create(cache.Layers);
        return new ModelKVCache(snapshot.Fork(), cache.Options);
    }

    /// <summary>Quantized codes (unpacked) that differ between two caches of the same block structure, and how many they hold.</summary>
    private static (long Differing, long Total) CodeDifferences(ModelKVCache a, ModelKVCache b)
    {
        long differing = 0, total = 0;
        for (int l = 0; l < a.Layers.Count; l++)
        {
            var (x, y) = (a.Layers[l].Blocks, b.Layers[l].Blocks);
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
            {
                foreach (var (p, q) in new[] { (x[i].Keys.Outliers, y[i].Keys.Outliers), (x[i].Keys.Easy, y[i].Keys.Easy), (x[i].Values.Rest, y[i].Values.Rest) })
                {
                    if (p is not null && q is not null)
                    {
                        using var scope = NewDisposeScope();
                        var codes = p.UnpackCodes();
                        differing += codes.ne(q.UnpackCodes()).sum().item<long>();
                        total += codes.NumberOfElements;
                    }
                }
            }
        }

        return (differing, total);
    }

    internal static Qwen2Decoder Random(Qwen2Config config, ScalarType type, Device dev, Qwen2Decoder? copyOf)
    {
        var decoder = new Qwen2Decoder(config, type, dev);
        var source = copyOf?.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        BenchRandom.Seed(21);
        foreach (var (name, parameter) in decoder.named_parameters())
        {
            if (source is not null)
            {
                parameter.copy_(source[name]);
            }
            else if (name.EndsWith("norm.weight", StringComparison.Ordinal))
            {
                parameter.copy_(rand(parameter.shape, device: dev) + 0.5);
            }
            else
            {
                parameter.copy_(randn(parameter.shape, device: dev) * (name.Contains("bias", StringComparison.Ordinal) ? 0.1 : 1.0 / Math.Sqrt(parameter.shape[^1])));
            }
        }

        return decoder;
    }
}
