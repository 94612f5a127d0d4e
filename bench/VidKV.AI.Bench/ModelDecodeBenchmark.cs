using VidKV.AI.Backend.Models;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Models.Siglip;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// One end-to-end decode step (embedding, 28 decoder layers, logits) of a LLaVA-OneVision-7B-geometry model with random
/// weights, after a prefill of N video frames' worth of tokens (196 per frame + newline + a short question), for the FP16
/// cache, the compressed cache with dequantize-then-attend, and the compressed cache with fused attention.
/// </summary>
internal static class ModelDecodeBenchmark
{
    private const int Warmup = 20;

    public static int Run(string commandLine, string device, int[] frameCounts, int repeats, int layers, string? output, bool parts = false, bool ops = false)
    {
        bool onCuda = device == "cuda";
        using var noGrad = no_grad();
        using var full = CreateSevenB(device, visionLayers: 1, layers, out var config, out var dev, out var dtype);
        var rows = new List<string>();
        var partRows = new List<string>();
        foreach (int frames in frameCounts)
        {
            long tokens = (frames * 196L) + 1 + 24;
            var compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
            var cases = new List<(string Label, KVCacheOptions Options, bool Kernels)>
            {
                ("FP16 cache", KVCacheOptions.FromPreset("fp16") with { DecodeAttention = DecodeAttention.Dequantize }, false),
                ("vidkv-1.5/1.58 Compact, dequantize then attend", compact with { DecodeAttention = DecodeAttention.Dequantize }, false),
                ("vidkv-1.5/1.58 Compact, fused", compact with { DecodeAttention = DecodeAttention.Fused }, false),
            };
            if (onCuda)
            {
                // The same with the CUDA layer kernels (fused projections, RMSNorm, RoPE, SwiGLU in single launches).
                cases.Add(("FP16 cache, layer kernels", cases[0].Options, true));
                cases.Add(("vidkv-1.5/1.58 Compact, fused, layer kernels", cases[2].Options, true));
            }

            foreach (var (label, options, kernels) in cases)
            {
                LayerKernels.Off = !kernels;
                using var cache = full.CreateCache(options);
                using (var scope = NewDisposeScope())
                {
                    BenchRandom.Seed(7);

                    var embeds = randn([1, tokens, config.Text.HiddenSize], dtype: dtype, device: dev).mul(tensor(0.02f, dtype: dtype, device: dev));
                    var importance = rand([tokens], device: dev);
                    full.Forward(new DecoderInput(embeds) { Cache = cache, Importance = importance });
                    Sync(onCuda);
                }

                var times = new double[repeats];
                var host = new double[repeats];
                for (int i = -Warmup; i < repeats; i++)
                {
                    using var scope = NewDisposeScope();
                    var id = tensor(new long[] { 1000 + i + Warmup }, device: dev).reshape(1, 1);
                    Sync(onCuda);
                    var watch = Stopwatch.StartNew();
                    var logits = full.Logits(full.Forward(new DecoderInput(full.Embed(id)) { Cache = cache }));
                    double issued = watch.Elapsed.TotalMilliseconds;
                    Sync(onCuda);
                    if (i >= 0)
                    {
                        times[i] = watch.Elapsed.TotalMilliseconds;
                        host[i] = issued;
                    }
                }

                if (parts && onCuda)
                {
                    // The same step again with each part's end marked: host time to issue it, then synchronized per part.
                    foreach (var profile in new[] { new StepProfile(synchronize: false), new StepProfile(synchronize: true) })
                    {
                        for (int i = 0; i < repeats; i++)
                        {
                            using var scope = NewDisposeScope();
                            var id = tensor(new long[] { 2000 + i }, device: dev).reshape(1, 1);
                            Sync(onCuda);
                            StepProfile.Current = profile;
                            profile.Start();
                            try
                            {
                                full.Logits(full.Forward(new DecoderInput(full.Embed(id)) { Cache = cache }));
                                profile.Mark("embedding, final norm, logits (outside the layers)");
                            }
                            finally
                            {
                                StepProfile.Current = null;
                            }

                            Sync(onCuda);
                        }

                        foreach (var (part, ms) in profile.Parts)
                        {
                            partRows.Add(string.Create(CultureInfo.InvariantCulture, $"| {frames} | {label} | {(profile.Synchronize ? "synchronized" : "host")} | {part} | {ms / repeats:F2} |"));
                        }

                        partRows.Add(string.Create(CultureInfo.InvariantCulture, $"| {frames} | {label} | {(profile.Synchronize ? "synchronized" : "host")} | **step** | {profile.Parts.Sum(p => p.Ms) / repeats:F2} |"));
                    }
                }

                LayerKernels.Off = false;
                Array.Sort(times);
                Array.Sort(host);
                var memory = cache.Memory;
                rows.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| {frames} | {tokens} | {label} | {times[repeats / 2]:F1} | {times[0]:F1} | {host[repeats / 2]:F1} | {memory.TotalBytes / (1024.0 * 1024):F0} |"));
                Console.Error.WriteLine(rows[^1]);
            }
        }

        var report = new StringBuilder();
        report.AppendLine($"Command: `{commandLine}`");
        report.AppendLine($"Machine: {Machine.Description}; {TorchRuntime.Description}");
        report.AppendLine($"Device: {device}; LLaVA-OneVision-7B geometry ({config.Text.NumLayers} layers, hidden 3584, 28 query / 4 KV heads, head dim 128, vocabulary 152064), random weights, {dtype}; prefill of random embeddings with random importance scores, then {repeats} timed decode steps ({Warmup} warm-up: the JIT compiles the step's code optimized after its first calls), each one token through embedding, every layer and the logits.");
        report.AppendLine();
        report.AppendLine("Host ms: the median time until the step's last operation was issued (the logits), before waiting for the device; a step whose host time is near its total is bound by the host.");
        report.AppendLine();
        report.AppendLine("| frames | cached tokens | cache | median ms / step | min ms | host ms (issued) | KV cache held MiB |");
        report.AppendLine("|---:|---:|---|---:|---:|---:|---:|");
        rows.ForEach(r => report.AppendLine(r));
        if (partRows.Count > 0)
        {
            report.AppendLine();
            report.AppendLine($"Where a step's time goes (`--parts`): the step again {repeats} times with each part's end marked in every layer; \"host\" is the time to issue each part (no synchronization), \"synchronized\" waits for the device before each clock read, so a part also holds the device work it issued. Milliseconds per step, summed over the layers.");
            report.AppendLine();
            report.AppendLine("| frames | cache | clock | part | ms per step |");
            report.AppendLine("|---:|---|---|---|---:|");
            partRows.ForEach(r => report.AppendLine(r));
        }

        if (ops && onCuda)
        {
            report.AppendLine();
            report.AppendLine(OpCosts(dev, dtype));
        }
        Console.WriteLine(report);
        if (output is not null)
        {
            Machine.WriteReport(output, report.ToString());
        }

        return 0;
    }

    /// <summary>
    /// A random-weight model of LLaVA-OneVision-7B's geometry with <paramref name="layers"/> decoder layers, drawn on the
    /// device (bf16 on CUDA, float32 on the CPU); checks that CUDA is there when asked for.
    /// </summary>
    internal static LlavaOnevisionModel CreateSevenB(string device, int visionLayers, int layers, out LlavaOnevisionConfig config, out Device dev, out ScalarType dtype)
    {
        TorchRuntime.EnsureLoaded();
        bool onCuda = device == "cuda";
        if (onCuda && !TorchRuntime.TryInitializeCuda())
        {
            throw new ArgumentException($"--device cuda: no CUDA device through {TorchRuntime.Description}; set {TorchRuntime.LibTorchVariable}.");
        }

        dev = torch.device(device);
        dtype = onCuda ? ScalarType.BFloat16 : ScalarType.Float32;
        config = SevenB(visionLayers);
        config = config with { Text = config.Text with { NumLayers = layers } };
        var build = Stopwatch.StartNew();
        var model = LlavaOnevisionModel.Create(config, new ModelLoadOptions { DType = dtype, Device = dev }, 0, drawOnDevice: true);
        Console.Error.WriteLine($"model built in {build.Elapsed.TotalSeconds:F0} s");
        return model;
    }

    /// <summary>
    /// Host microseconds per call of TorchSharp operations a decode step issues, on tensors of its shapes (the device is not
    /// waited for; 2,000 calls each after 200 warm-up calls): what the host pays per operation.
    /// </summary>
    private static string OpCosts(Device dev, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 1, 3584, device: dev).to(dtype);
        var qkv = randn(1, 1, 4608, device: dev).to(dtype);
        var w = randn(3584, 3584, device: dev).to(dtype);
        var small = randn(1, 3584, device: dev).to(dtype);
        var weight = randn(3584, device: dev).to(dtype);
        var cases = new (string Name, Func<Tensor> Op)[]
        {
            ("narrow (view)", () => qkv.narrow(2, 0, 3584)),
            ("view", () => qkv.view(1, 1, 36, 128)),
            ("transpose (view)", () => qkv.view(1, 1, 36, 128).transpose(1, 2)),
            ("reshape of a contiguous tensor (view)", () => x.reshape(-1, 3584)),
            ("empty_like [1, 1, 3584]", () => empty_like(x)),
            ("add [1, 1, 3584]", () => x.add(x)),
            ("linear [1, 3584] x [3584, 3584]", () => nn.functional.linear(small, w)),
            ("addmm [1, 3584] + [1, 3584] x [3584, 3584]^T", () => small.addmm(small, w.t(), 1, 1)),
            ("RMSNorm kernel launch (LayerKernels.RmsNorm)", () => LayerKernels.RmsNorm(x, weight, 1e-6)),
        };
        var sb = new StringBuilder();
        sb.AppendLine("Host cost per TorchSharp call (`--ops`; 2,000 calls each, device not waited for, inside one dispose scope per 100 calls):");
        sb.AppendLine();
        sb.AppendLine("| operation | host µs per call |");
        sb.AppendLine("|---|---:|");
        foreach (var (name, op) in cases)
        {
            for (int i = 0; i < 200; i++)
            {
                using var warm = NewDisposeScope();
                op();
            }

            cuda.synchronize();
            var watch = Stopwatch.StartNew();
            for (int block = 0; block < 20; block++)
            {
                using var inner = NewDisposeScope();
                for (int i = 0; i < 100; i++)
                {
                    op();
                }
            }

            double us = watch.Elapsed.TotalMilliseconds * 1000 / 2000;
            cuda.synchronize();
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {us:F2} |"));
        }

        return sb.ToString();
    }

    internal static void Sync(bool onCuda)
    {
        if (onCuda)
        {
            cuda.synchronize();
        }
    }

    /// <summary>LLaVA-OneVision-7B's geometry; the vision tower with <paramref name="visionLayers"/> layers (the real one has 26 in use).</summary>
    internal static LlavaOnevisionConfig SevenB(int visionLayers = 1) => new()
    {
        Text = new Qwen2Config
        {
            VocabSize = 152064,
            HiddenSize = 3584,
            IntermediateSize = 18944,
            NumLayers = 28,
            NumHeads = 28,
            NumKeyValueHeads = 4,
            HeadDim = 128,
            RmsNormEps = 1e-6,
            RopeTheta = 1000000,
            MaxPositionEmbeddings = 131072,
            TieWordEmbeddings = false,
            EosTokenIds = new[] { 151645 },
        },
        Vision = new SiglipVisionConfig
        {
            HiddenSize = 1152,
            IntermediateSize = 4304,
            NumLayers = visionLayers,
            NumHeads = 16,
            ImageSize = 384,
            PatchSize = 14,
            NumChannels = 3,
            LayerNormEps = 1e-6,
        },
        ImageTokenId = 151646,
        VideoTokenId = 151647,
        VisionFeatureLayer = -1,
        VisionFeatureSelectStrategy = "full",
        VisionAspectRatio = "anyres_max_9",
        ImageGridPinpoints = new[] { (384, 384) },
        ProjectorBias = true,
    };
}
