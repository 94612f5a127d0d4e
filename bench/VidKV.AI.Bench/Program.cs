using System.Globalization;
using System.Runtime.CompilerServices;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Bench;

internal static class Program
{
    private const string Usage = """
        Usage: dotnet run -c Release --project bench/VidKV.AI.Bench -- <command> [options]

        Commands:
          cache    Compression, reconstruction error and quantize throughput of every KV cache preset,
                   at LLaVA-OneVision-7B's cache geometry, on synthetic keys and values.

          decode   Decode attention time and peak extra memory per layer at LLaVA-OneVision-7B's geometry: FP16 cache with
                   TorchSharp's attention, dequantize-then-attend, and fused attention from the packed codes.

          model-decode [--frames 32,256] [--repeats 10] [--layers 28] [--device cpu|cuda] [--parts] [--ops] [--out PATH]
                   One end-to-end decode step of a LLaVA-OneVision-7B-geometry model (random weights) after a prefill of
                   that many frames of video: FP16 cache, compressed cache dequantized then attended, and fused; on CUDA
                   also with the layer kernels (fused projections, RMSNorm, RoPE, SwiGLU), and the host time of a step;
                   --parts: where a step's time goes, per part (host and synchronized); --ops: host cost per operation.

          cuda-check [--out PATH]
                   Fused attention's NVRTC CUDA kernel and chunked path against dequantize-then-attend on a CUDA device,
                   for every preset, profile and variant of the unit tests (which run on the CPU only); exit code 1 on
                   any difference beyond 1e-4. Needs VIDKV_LIBTORCH.

          layer-check [--out PATH]
                   The decoder's CUDA layer kernels (RMSNorm, RoPE, SwiGLU; fused projections) against the TorchSharp
                   operations they replace, kernel by kernel and over two 7B-geometry layers; exit code 1 on any
                   difference beyond its limit. Needs VIDKV_LIBTORCH.

          op-hashes [--device cuda|cpu] [--repeats 3] [--out PATH]
                   Each operation of a 7B-geometry decode (projections, prefill SDPA, layer kernels, the cache's prefill,
                   appends and attention, two decoder layers) on fixed seeded inputs, several times: a hash of its
                   output's bits and whether the repeats match. Compare the hashes of several processes to find an
                   operation that is not deterministic; exit code 1 when repeats differ.

          timeline [--tokens 4096,65536,131072] [--launches 20] [--out PATH]
                   Where one launch of the tensor-core attention kernel spends its time (7B layer, vidkv-1.5/1.58 Compact):
                   the kernel compiled with VIDKV_TIMELINE writes each block's global timer and SM clock at each part of
                   its work (entry, copy table, query, transform, main loop, state, merges, exit); launch skew, each
                   part's duration per block and the path of the blocks that wrote the output. Needs VIDKV_LIBTORCH.

          kernels [--arch sm_90] [--out FOLDER]
                   Every CUDA kernel the library compiles at run time, compiled here with NVRTC for one architecture (no
                   GPU needed): registers, spills and shared memory per kernel, and with cuobjdump (VIDKV_CUOBJDUMP or the
                   search path; scripts/cuda-binutils.sh fetches it) the SASS and its instruction counts per class. Writes
                   the sources, cubins, SASS and kernels.md to FOLDER [kernels]. Needs libnvrtc (scripts/ensure-nvrtc.sh).

          snapshot [--frames 32,64] [--repeats 5] [--out PATH]
                   KV cache snapshots at LLaVA-OneVision-0.5B's cache geometry after a prefill of that many frames:
                   snapshot bytes of each preset against a 16-bit cache, fork time, serialized size, write and read time.

          batching [--streams 1,4,16] [--frames 8] [--tokens 32] [--out PATH]
                   Many conversations at once with the built-in model on the CPU: aggregate decode tokens per second and
                   per-stream first-token latency, FP16 against vidkv-1.5/1.58, row-wise against batch-wide products.

          memory [--frames 8,32,64] [--models builtin,0.5b] [--redis start|HOST:PORT|none] [--out PATH]
                   The video memory: time to first token of a first question and of a follow-up question about the same
                   clip (its cache reused) for the built-in model and the 0.5B-geometry checkpoint of 'load' side by side;
                   the remembered video's bytes per preset against 16-bit, per minute of video; disk write and read time,
                   and write and read time through HybridCache over Redis (start: a redis-server of its own on 127.0.0.1,
                   the default; none: no Redis columns).

          prefill [--frames 32] [--repeats 1] [--parts | --ops] [--out PATH]
                   The CPU prefill of a first question about a clip with the 0.5B-geometry checkpoint of 'load' (bf16):
                   time to first token as 'memory' measures it (median of the repeats), and with --parts the same work
                   cut into parts timed alone (decoding, vision tower, projector, embeddings, decoder with and without
                   the compressed cache) with their matrix-product rate, then one layer's operations timed alone (--ops: only
                   those).

          serving [--device cuda] [--memory-frames 32,256] [--frames 256] [--streams 1,4,16,64] [--budget-gib 40]
                  [--new-tokens 256] [--steps 10] [--vision-layers 26] [--layers 28] [--out PATH]
                   LLaVA-OneVision-7B geometry, random weights (for the GPU machine): first against follow-up question
                   time with a remembered video; how many independent conversations of --frames frames each cache fits
                   in the budget (bytes held by tensors); batched decode throughput at each stream count.

          load [bfloat16|float32]
                   Writes a random-weight checkpoint of LLaVA-OneVision-0.5B's geometry (1.8 GB, bf16) to a temp folder
                   (once) and measures the resident memory of loading it as the given type.

        Options of 'cache' (defaults in brackets):
          --tokens N      cached tokens per layer [16384]
          --layers N      decoder layers [28]
          --kv-heads N    key-value heads [4]
          --q-heads N     query heads, a multiple of --kv-heads [28]
          --head-dim N    head dimension [128]
          --queries N     random decode queries per layer for the attention error [8]
          --seed N        random seed [0]
          --device D      cpu or cuda [cpu]; cuda needs VIDKV_LIBTORCH (a PyTorch torch/lib folder, or 'python')
          --out PATH      also write the report (markdown) to PATH

        Options of 'decode' (defaults in brackets):
          --tokens N,N    cached tokens per layer, comma-separated [4096,16384,65536]
          --batch N       batch size [1]
          --kv-heads N    key-value heads [4]
          --q-heads N     query heads, a multiple of --kv-heads [28]
          --head-dim N    head dimension [128]
          --preset NAME   cache preset [vidkv-1.5/1.58]
          --profile P     Reference or Compact [Compact]
          --repeats N     timed calls per method (median reported) [10]
          --copies N      caches rotated on CUDA (the CPU uses one) [enough for 256 MiB compressed, 2 to 64]
          --seed N        random seed [0]
          --device D      cpu or cuda [cpu]
          --methods M,M   methods to time, comma-separated, of fp16, dequantize, bf16, fp32, avx512, avx2, portable,
                          cuda, chunked [all]; dequantize-then-attend is still run once as the reference
          --out PATH      also write the report (markdown) to PATH
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            switch (args[0])
            {
                case "cache":
                    if (args.Skip(1).Any(a => a is "-h" or "--help"))
                    {
                        Console.WriteLine(Usage);
                        return 0;
                    }

                    var settings = ParseCacheArgs(args.AsSpan(1));
                    return new CacheBenchmark(settings).Run(CommandLine(args));
                case "decode":
                    if (args.Skip(1).Any(a => a is "-h" or "--help"))
                    {
                        Console.WriteLine(Usage);
                        return 0;
                    }

                    return new DecodeBenchmark(ParseDecodeArgs(args.AsSpan(1))).Run(CommandLine(args));
                case "model-decode":
                    return ModelDecodeBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--device") ? args[Array.IndexOf(args, "--device") + 1] : "cpu",
                        args.Contains("--frames") ? args[Array.IndexOf(args, "--frames") + 1].Split(',').Select(f => int.Parse(f, CultureInfo.InvariantCulture)).ToArray() : new[] { 32, 256 },
                        args.Contains("--repeats") ? int.Parse(args[Array.IndexOf(args, "--repeats") + 1], CultureInfo.InvariantCulture) : 10,
                        args.Contains("--layers") ? int.Parse(args[Array.IndexOf(args, "--layers") + 1], CultureInfo.InvariantCulture) : 28,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null,
                        args.Contains("--parts"),
                        args.Contains("--ops"));
                case "layer-check":
                    return LayerKernelCheck.Run(CommandLine(args), args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "op-hashes":
                    return OpHashes.Run(
                        CommandLine(args),
                        args.Contains("--device") ? args[Array.IndexOf(args, "--device") + 1] : "cuda",
                        args.Contains("--repeats") ? Positive("--repeats (runs of each operation)", args[Array.IndexOf(args, "--repeats") + 1]) : 3,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "cuda-check":
                    return CudaCheck.Run(CommandLine(args), args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "timeline":
                    return KernelTimeline.Run(
                        CommandLine(args),
                        args.Contains("--tokens") ? args[Array.IndexOf(args, "--tokens") + 1].Split(',').Select(f => Positive("--tokens (comma-separated cached token counts, multiples of 32)", f)).ToArray() : new[] { 4096, 65536, 131072 },
                        args.Contains("--launches") ? Positive("--launches (launches before the one read back)", args[Array.IndexOf(args, "--launches") + 1]) : 20,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "kernels":
                    return KernelListing.Run(
                        CommandLine(args),
                        args.Contains("--arch") ? args[Array.IndexOf(args, "--arch") + 1] : "sm_90",
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : "kernels");
                case "snapshot":
                    return SnapshotBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--frames") ? args[Array.IndexOf(args, "--frames") + 1].Split(',').Select(f => int.Parse(f, CultureInfo.InvariantCulture)).ToArray() : new[] { 32, 64 },
                        args.Contains("--repeats") ? int.Parse(args[Array.IndexOf(args, "--repeats") + 1], CultureInfo.InvariantCulture) : 5,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "batching":
                    return BatchingBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--streams") ? args[Array.IndexOf(args, "--streams") + 1].Split(',').Select(f => Positive("--streams (comma-separated stream counts)", f)).ToArray() : new[] { 1, 4, 16 },
                        args.Contains("--frames") ? int.Parse(args[Array.IndexOf(args, "--frames") + 1], CultureInfo.InvariantCulture) : 8,
                        args.Contains("--tokens") ? int.Parse(args[Array.IndexOf(args, "--tokens") + 1], CultureInfo.InvariantCulture) : 32,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "memory":
                    return MemoryBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--frames") ? args[Array.IndexOf(args, "--frames") + 1].Split(',').Select(f => int.Parse(f, CultureInfo.InvariantCulture)).ToArray() : new[] { 8, 32, 64 },
                        args.Contains("--models") ? args[Array.IndexOf(args, "--models") + 1].Split(',') : new[] { "builtin", "0.5b" },
                        args.Contains("--redis") ? args[Array.IndexOf(args, "--redis") + 1] : "start",
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "prefill":
                    return PrefillBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--frames") ? Positive("--frames (frames of the clip)", args[Array.IndexOf(args, "--frames") + 1]) : 32,
                        args.Contains("--repeats") ? int.Parse(args[Array.IndexOf(args, "--repeats") + 1], CultureInfo.InvariantCulture) : 1,
                        args.Contains("--parts"),
                        args.Contains("--ops"),
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "serving":
                    return ServingBenchmark.Run(
                        CommandLine(args),
                        args.Contains("--device") ? args[Array.IndexOf(args, "--device") + 1] : "cpu",
                        args.Contains("--memory-frames") ? args[Array.IndexOf(args, "--memory-frames") + 1].Split(',').Select(f => int.Parse(f, CultureInfo.InvariantCulture)).ToArray() : new[] { 32, 256 },
                        args.Contains("--frames") ? int.Parse(args[Array.IndexOf(args, "--frames") + 1], CultureInfo.InvariantCulture) : 256,
                        args.Contains("--streams") ? args[Array.IndexOf(args, "--streams") + 1].Split(',').Select(f => Positive("--streams (comma-separated stream counts)", f)).ToArray() : new[] { 1, 4, 16, 64 },
                        args.Contains("--budget-gib") ? double.Parse(args[Array.IndexOf(args, "--budget-gib") + 1], CultureInfo.InvariantCulture) : 40,
                        args.Contains("--new-tokens") ? int.Parse(args[Array.IndexOf(args, "--new-tokens") + 1], CultureInfo.InvariantCulture) : 256,
                        args.Contains("--steps") ? int.Parse(args[Array.IndexOf(args, "--steps") + 1], CultureInfo.InvariantCulture) : 10,
                        args.Contains("--vision-layers") ? int.Parse(args[Array.IndexOf(args, "--vision-layers") + 1], CultureInfo.InvariantCulture) : 26,
                        args.Contains("--layers") ? int.Parse(args[Array.IndexOf(args, "--layers") + 1], CultureInfo.InvariantCulture) : 28,
                        args.Contains("--out") ? args[Array.IndexOf(args, "--out") + 1] : null);
                case "load":
                    return LoadBenchmark.Run(CommandLine(args), args.Length > 1 ? args[1] : "bfloat16");
                default:
                    throw new ArgumentException($"Unknown command '{args[0]}'. Allowed: cache, decode, model-decode, layer-check, op-hashes, cuda-check, timeline, kernels, snapshot, batching, memory, prefill, serving, load.");
            }
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            Console.Error.WriteLine();
            Console.Error.WriteLine(Usage);
            return 2;
        }
    }

    /// <summary>Options as "--name value" or "--name=value".</summary>
    private static CacheBenchmarkSettings ParseCacheArgs(ReadOnlySpan<string> args)
    {
        var s = new CacheBenchmarkSettings();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{arg}'; options start with '--'.");
            }

            string name = arg, value;
            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }
            else
            {
                throw new ArgumentException($"Option '{name}' needs a value.");
            }

            s = name switch
            {
                "--tokens" => s with { Tokens = Positive(name, value) },
                "--layers" => s with { Layers = Positive(name, value) },
                "--kv-heads" => s with { KvHeads = Positive(name, value) },
                "--q-heads" => s with { QHeads = Positive(name, value) },
                "--head-dim" => s with { HeadDim = Positive(name, value) },
                "--queries" => s with { Queries = Positive(name, value) },
                "--seed" => s with { Seed = Integer(name, value) },
                "--device" => s with { Device = DeviceName(value) },
                "--out" => s with { Out = OutPath(value) },
                _ => throw new ArgumentException($"Unknown option '{name}'."),
            };
        }

        CheckHeads(s.QHeads, s.KvHeads);
        return s;
    }

    private static DecodeBenchmarkSettings ParseDecodeArgs(ReadOnlySpan<string> args)
    {
        var s = new DecodeBenchmarkSettings();
        foreach (var (name, value) in Options(args))
        {
            s = name switch
            {
                "--tokens" => s with { Tokens = value.Split(',').Select(t => Positive(name, t)).ToArray() },
                "--batch" => s with { Batch = Positive(name, value) },
                "--kv-heads" => s with { KvHeads = Positive(name, value) },
                "--q-heads" => s with { QHeads = Positive(name, value) },
                "--head-dim" => s with { HeadDim = Positive(name, value) },
                "--preset" => s with { Preset = KVCacheOptions.FromPreset(value).Preset },
                "--profile" => s with { Profile = Enum.TryParse<CacheProfile>(value, ignoreCase: true, out var p) && Enum.IsDefined(p) ? p : throw new ArgumentException($"--profile must be Reference or Compact; got '{value}'.") },
                "--repeats" => s with { Repeats = Positive(name, value) },
                "--copies" => s with { Copies = Positive(name, value) },
                "--seed" => s with { Seed = Integer(name, value) },
                "--device" => s with { Device = DeviceName(value) },
                "--out" => s with { Out = OutPath(value) },
                "--methods" => s with { Methods = DecodeBenchmarkSettings.ParseMethods(value) },
                _ => throw new ArgumentException($"Unknown option '{name}'."),
            };
        }

        CheckHeads(s.QHeads, s.KvHeads);
        return s;
    }

    private static long Integer(string name, string value)
        => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : throw new ArgumentException($"{name} must be an integer; got '{value}'.");

    private static string DeviceName(string value)
        => value is "cpu" or "cuda" ? value : throw new ArgumentException($"--device must be cpu or cuda; got '{value}'.");

    private static string OutPath(string value) => value.Length > 0 ? value : throw new ArgumentException("--out needs a path.");

    private static void CheckHeads(int queryHeads, int kvHeads)
    {
        if (queryHeads % kvHeads != 0)
        {
            throw new ArgumentException($"--q-heads ({queryHeads}) must be a multiple of --kv-heads ({kvHeads}).");
        }
    }

    /// <summary>"--name value" or "--name=value" pairs.</summary>
    private static List<(string Name, string Value)> Options(ReadOnlySpan<string> args)
    {
        var list = new List<(string, string)>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{arg}'; options start with '--'.");
            }

            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                list.Add((arg[..eq], arg[(eq + 1)..]));
            }
            else if (i + 1 < args.Length)
            {
                list.Add((arg, args[++i]));
            }
            else
            {
                throw new ArgumentException($"Option '{arg}' needs a value.");
            }
        }

        return list;
    }

    private static int Positive(string name, string value)
        => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n
            : throw new ArgumentException($"{name} must be a positive integer; got '{value}'.");

    /// <summary>The command as it would be typed from the repository root.</summary>
    private static string CommandLine(string[] args)
        => "dotnet run -c Release --project bench/VidKV.AI.Bench -- " + string.Join(" ", args.Select(Quote));

    private static string Quote(string arg)
        => arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_./=:+,".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

internal static class NativeLoad
{
    // The benchmark touches TorchSharp before any library type: resolve the native layer first.
    [ModuleInitializer]
    internal static void Initialize() => TorchRuntime.EnsureLoaded();
}
