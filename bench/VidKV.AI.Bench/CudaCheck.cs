using System.Globalization;
using System.Text;
using TorchSharp;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// The fused-attention equivalence cases of the unit tests (tests/Quantization.Tests/Attention/FusedAttentionTests.cs),
/// run on a CUDA device where no test runner exists: every preset in both profiles, the variants (per-token values,
/// scaled ternary, ±s signs, 4-bit, bf16 and float32 metadata), odd and even 1-bit channel counts, LLaVA-OneVision-7B's
/// head geometry and a cache longer than many kernel runs; batch 2, grouped-query attention, decode and causal
/// multi-token queries. Each compares the NVRTC kernel path and the chunked path with dequantize-then-attend on the
/// same device. Then the batched launch (<see cref="FusedAttention.AttendBatch"/>: 1 to 16 and 70 sequences of different
/// lengths, residual tails, forks sharing a snapshot's blocks, GQA 7:1, mixed kinds) against one call per sequence and
/// against dequantize-then-attend. Exit code 1 when any difference exceeds the tolerance.
/// </summary>
internal static class CudaCheck
{
    private const double Tolerance = 1e-4;

    public static int Run(string commandLine, string? outPath)
    {
        Machine.RequireCuda();
        var device = torch.device("cuda");
        var rows = new List<(string Case, string Path, double Error, string Kernel)>();
        Console.WriteLine($"fused CUDA kernel: {(FusedAttention.IsSupported(FusedKernelPath.Cuda) ? "available" : "NOT available")} ({FusedAttention.CudaDescription})");

        void Check(string name, KVCacheOptions options, int batch, int kvHeads, int qHeads, int prompt, int steps, int dim, int seed, (int Tq, bool Causal)[]? queries = null)
        {
            using var scope = NewDisposeScope();
            random.manual_seed(seed);
            using var cache = new QuantizedKVCache(options);
            var offset = zeros(dim);
            offset[0] = 6f;
            offset[dim / 2] = -4f;
            cache.Prefill(((randn(batch, kvHeads, prompt, dim) * 2) + offset).to(device), randn(batch, kvHeads, prompt, dim).to(device), randn(batch, prompt).to(device));
            for (int i = 0; i < steps; i++)
            {
                cache.Append(((randn(batch, kvHeads, 1, dim) * 2) + offset).to(device), randn(batch, kvHeads, 1, dim).to(device));
            }

            foreach (var (tq, causal) in queries ?? new[] { (1, false), (3, true), (2, false) })
            {
                using var inner = NewDisposeScope();
                var query = (randn(batch, qHeads, tq, dim) * 0.7).to(device);
                var expected = cache.Attend(query, causal);
                foreach (var path in new[] { FusedKernelPath.Cuda, FusedKernelPath.Chunked })
                {
                    double error;
                    string kernel = "-";
                    try
                    {
                        var actual = cache.AttendFused(query, causal, path: path);
                        kernel = path == FusedKernelPath.Cuda ? FusedAttention.LastCudaKernel : "chunked";
                        error = !actual.shape.SequenceEqual(expected.shape) ? double.PositiveInfinity : (actual - expected).abs().max().item<float>();
                        if (kernel.StartsWith("tensor cores", StringComparison.Ordinal))
                        {
                            // The instantiation specialized for the cache's geometry against the one that reads it at run
                            // time: the same arithmetic, so the same bits.
                            Environment.SetEnvironmentVariable(FusedAttention.CudaKernelVariable, "mma-generic");
                            try
                            {
                                var generic = cache.AttendFused(query, causal, path: path);
                                double diff = (generic - actual).abs().max().item<float>();
                                rows.Add(($"{name}, Tq={tq}{(causal ? " causal" : string.Empty)}: specialized vs run-time geometry, bit for bit{(diff == 0 ? string.Empty : $": NOT ({diff:E1})")}", "Cuda generic", diff == 0 ? 0 : double.PositiveInfinity, FusedAttention.LastCudaKernel));
                            }
                            finally
                            {
                                Environment.SetEnvironmentVariable(FusedAttention.CudaKernelVariable, null);
                            }
                        }
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException)
                    {
                        Console.WriteLine($"{name} Tq={tq} {path}: {ex.Message}");
                        error = double.PositiveInfinity;
                    }

                    rows.Add(($"{name}, Tq={tq}{(causal ? " causal" : string.Empty)}", path.ToString(), error, kernel));
                }
            }
        }

        static KVCacheOptions Small(string preset, CacheProfile profile) => KVCacheOptions.FromPreset(preset, profile) with { GroupSize = 4, ResidualLength = 8 };

        foreach (var preset in KVCacheOptions.PresetNames)
        {
            foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
            {
                Check($"{preset} {profile} (G=4)", Small(preset, profile), 2, 2, 6, 61, 13, 16, 0);
                Check($"{preset} {profile} (581 tokens)", KVCacheOptions.FromPreset(preset, profile) with { ResidualType = ScalarType.Float16 }, 2, 2, 6, 581, 3, 32, 1);
            }
        }

        foreach (var variant in new[] { "per-token values", "scaled ternary", "±s signs", "4-bit outliers and values", "bf16 metadata", "float32 metadata" })
        {
            foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.5/1.66", "kivi-2" })
            {
                foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
                {
                    var o = Small(preset, profile);
                    o = variant switch
                    {
                        "per-token values" => o with { ValueAxis = QuantizationAxis.PerToken },
                        "scaled ternary" => o with { ScaledTernary = true },
                        "±s signs" => o with { SignReconstruction = SignReconstruction.PlusMinusScale },
                        "4-bit outliers and values" => o with { OutlierBits = 4, ValueBits = 4 },
                        "bf16 metadata" => o with { MetadataType = ScalarType.BFloat16, ResidualType = ScalarType.BFloat16 },
                        _ => o with { MetadataType = ScalarType.Float32 },
                    };
                    Check($"{preset} {profile} {variant}", o, 2, 2, 6, 45, 9, 16, 2);
                }
            }
        }

        foreach (var (dim, bits) in new[] { (18, 1.5), (20, 1.25), (23, 1.75), (16, 1.0), (16, 2.0) })
        {
            foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
            {
                Check($"D={dim} key bits {bits} {profile}", Small("vidkv-1.5/1.58", profile) with { KeyBits = bits }, 2, 2, 6, 37, 2, dim, 3);
            }
        }

        foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.5/1.66", "kivi-2" })
        {
            Check($"{preset} 7B heads, 3000 tokens", KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { ResidualType = ScalarType.Float16 }, 1, 4, 28, 3000, 40, 128, 4);
        }

        // A question's tokens over a remembered video: more query rows per KV head than one launch takes (7 x 20 = 140),
        // run in slices of 4 tokens, each with its own causal limit.
        foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.5/1.66", "kivi-2" })
        {
            Check($"{preset} 7B heads, 3000 tokens, long queries", KVCacheOptions.FromPreset(preset, CacheProfile.Compact) with { ResidualType = ScalarType.Float16 }, 1, 4, 28, 3000, 40, 128, 14, [(20, true), (9, false), (5, true)]);
        }

        // The single-launch tensor-core kernel: 7B geometry (4 KV heads, head dim 128), groups of 32 or 64 tokens, its variants;
        // 2 query heads per KV head for causal multi-token rows; a long cache (many splits) and a streamed one (many blocks).
        static KVCacheOptions Seven(string preset, CacheProfile profile) => KVCacheOptions.FromPreset(preset, profile) with { ResidualType = ScalarType.Float16 };
        foreach (var profile in new[] { CacheProfile.Reference, CacheProfile.Compact })
        {
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 7B heads, 2000 tokens", Seven("vidkv-1.5/1.58", profile), 1, 4, 28, 2000, 40, 128, 5);
            Check($"tensor cores: vidkv-1.25/1.58 {profile} 7B heads, 1000 tokens", Seven("vidkv-1.25/1.58", profile), 1, 4, 28, 1000, 7, 128, 6);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 2 heads per KV head, batch 2", Seven("vidkv-1.5/1.58", profile), 2, 4, 8, 1000, 5, 128, 7);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} ±s signs", Seven("vidkv-1.5/1.58", profile) with { SignReconstruction = SignReconstruction.PlusMinusScale }, 1, 4, 28, 1000, 3, 128, 8);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 4-bit outliers", Seven("vidkv-1.5/1.58", profile) with { OutlierBits = 4 }, 1, 4, 28, 1000, 3, 128, 9);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 8-bit outliers", Seven("vidkv-1.5/1.58", profile) with { OutlierBits = 8 }, 1, 4, 28, 1000, 3, 128, 10);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} bf16 metadata and residual", Seven("vidkv-1.5/1.58", profile) with { MetadataType = ScalarType.BFloat16, ResidualType = ScalarType.BFloat16 }, 1, 4, 28, 1000, 3, 128, 11);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} float32 metadata and residual", Seven("vidkv-1.5/1.58", profile) with { MetadataType = ScalarType.Float32, ResidualType = ScalarType.Float32 }, 1, 4, 28, 1000, 3, 128, 12);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} G=64", Seven("vidkv-1.5/1.58", profile) with { GroupSize = 64 }, 1, 4, 28, 1000, 70, 128, 13);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 20000 tokens", Seven("vidkv-1.5/1.58", profile), 1, 4, 28, 20000, 3, 128, 14);
            Check($"tensor cores: vidkv-1.5/1.58 {profile} 300 steps after 700 tokens", Seven("vidkv-1.5/1.58", profile), 1, 4, 28, 700, 300, 128, 15);
        }

        // One launch over many sequences (FusedAttention.AttendBatch, the batched decode step): caches of one batch item
        // with different lengths, block counts and residual tails (one without a residual), some forked from one snapshot
        // (sharing its blocks, as remembered videos do); each row against the same sequence's own call (the same splits
        // and arithmetic: expected bit for bit) and against dequantize-then-attend.
        void CheckBatch(string name, KVCacheOptions[] options, int sequences, int kvHeads, int qHeads, int tq, int basePrompt, int dim, int seed, int forks = 2)
        {
            using var scope = NewDisposeScope();
            random.manual_seed(seed);
            var offset = zeros(dim);
            offset[0] = 6f;
            offset[dim / 2] = -4f;
            // float32 inputs, so that dequantize-then-attend rebuilds the cache in float32 (the residual is stored as the options say).
            Tensor Keys(int t) => ((randn(1, kvHeads, t, dim) * 2) + offset).to(device);
            Tensor Values(int t) => randn(1, kvHeads, t, dim).to(device);
            var caches = new List<QuantizedKVCache>();
            try
            {
                for (int i = 0; caches.Count < sequences; i++)
                {
                    var o = options[i % options.Length];
                    // Lengths spread over 1x..3x the base, a multiple of the group for every third (no residual), tails up to 45 steps.
                    int prompt = i % 3 == 2 ? basePrompt / o.GroupSize * o.GroupSize : basePrompt + (int)((long)basePrompt * 2 * ((i * 7919) % 97) / 97) + i;
                    int steps = i % 3 == 2 ? 0 : (i * 13) % 46;
                    var cache = new QuantizedKVCache(o);
                    cache.Prefill(Keys(prompt), Values(prompt), randn(1, prompt).to(device));
                    for (int k = 0; k < steps; k++)
                    {
                        cache.Append(Keys(1), Values(1));
                    }

                    caches.Add(cache);
                    if (i == 0 && forks > 0)
                    {
                        using var snapshot = cache.CreateSnapshot();
                        for (int f = 0; f < forks && caches.Count < sequences; f++)
                        {
                            var fork = snapshot.Fork();
                            for (int k = 0; k < 5 + (17 * f); k++)
                            {
                                fork.Append(Keys(1), Values(1));
                            }

                            caches.Add(fork);
                        }
                    }
                }

                bool causal = tq > 1;
                // fp16 queries, as the model's decode step gives them (the kernel reads them as they are).
                var queries = (randn(sequences, qHeads, tq, dim) * 0.7).to(ScalarType.Float16).to(device);
                Tensor batched, exact;
                string kernel;
                try
                {
                    exact = FusedAttention.AttendBatch(caches, queries, causal, path: FusedKernelPath.Cuda, matchSingleCalls: true);
                    batched = FusedAttention.AttendBatch(caches, queries, causal, path: FusedKernelPath.Cuda);
                    kernel = FusedAttention.LastCudaKernel;
                }
                catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException)
                {
                    Console.WriteLine($"{name}: {ex.Message}");
                    rows.Add(($"{name}: batched launch", "Cuda batch", double.PositiveInfinity, "-"));
                    return;
                }

                double vsAlone = 0, exactVsAlone = 0, vsReference = 0;
                for (int i = 0; i < sequences; i++)
                {
                    using var inner = NewDisposeScope();
                    var q = queries.narrow(0, i, 1);
                    var alone = FusedAttention.Attend(caches[i], q, causal, path: FusedKernelPath.Cuda);
                    vsAlone = Math.Max(vsAlone, (batched.narrow(0, i, 1) - alone).abs().max().item<float>());
                    exactVsAlone = Math.Max(exactVsAlone, (exact.narrow(0, i, 1) - alone).abs().max().item<float>());
                    vsReference = Math.Max(vsReference, (batched.narrow(0, i, 1) - caches[i].Attend(q, causal)).abs().max().item<float>());
                }

                // The batched AttendForDecode (what the scheduler's step calls) against each cache's own AttendForDecode.
                var decode = QuantizedKVCache.AttendForDecode(caches, queries, causal, matchSingleCalls: true);
                string decodeKernel = FusedAttention.LastCudaKernel;
                double vsDecode = 0;
                for (int i = 0; i < sequences; i++)
                {
                    using var inner = NewDisposeScope();
                    vsDecode = Math.Max(vsDecode, (decode.narrow(0, i, 1) - caches[i].AttendForDecode(queries.narrow(0, i, 1), causal)).abs().max().item<float>());
                }

                string lengths = $"{caches.Min(c => c.Length)}..{caches.Max(c => c.Length)} tokens";
                rows.Add(($"{name}, {sequences} sequences, {lengths}, Tq={tq}: batched, the GPU shared, vs one call each", "Cuda batch", vsAlone, kernel));
                // With each cache split as its own call splits it, the arithmetic is the same: expected bit for bit.
                rows.Add(($"{name}, {sequences} sequences, {lengths}, Tq={tq}: batched, own splits (matchSingleCalls), vs one call each, bit for bit{(exactVsAlone == 0 ? string.Empty : $": NOT ({exactVsAlone:E1})")}", "Cuda batch", exactVsAlone == 0 ? 0 : double.PositiveInfinity, kernel));
                rows.Add(($"{name}, {sequences} sequences, {lengths}, Tq={tq}: batched vs dequantize", "Cuda batch", vsReference, kernel));
                rows.Add(($"{name}, {sequences} sequences, {lengths}, Tq={tq}: AttendForDecode batched (matchSingleCalls) vs one call each, bit for bit{(vsDecode == 0 ? string.Empty : $": NOT ({vsDecode:E1})")}", "Auto batch", vsDecode == 0 ? 0 : double.PositiveInfinity, decodeKernel));
            }
            finally
            {
                caches.ForEach(c => c.Dispose());
            }
        }

        var compact = Seven("vidkv-1.5/1.58", CacheProfile.Compact);
        foreach (int n in new[] { 1, 2, 3, 5, 8, 16 })
        {
            CheckBatch("batched tensor cores: vidkv-1.5/1.58 Compact 7B heads (GQA 7:1)", [compact], n, 4, 28, 1, 700, 128, 20 + n);
        }

        CheckBatch("batched tensor cores: 2 heads per KV head, causal", [compact], 6, 4, 8, 3, 500, 128, 40);
        CheckBatch("batched tensor cores: G=64, 4-bit outliers", [compact with { GroupSize = 64, OutlierBits = 4 }], 7, 4, 28, 1, 900, 128, 41);
        CheckBatch("batched tensor cores: bf16 and float32 residuals mixed (two kinds)", [compact with { MetadataType = ScalarType.BFloat16, ResidualType = ScalarType.BFloat16 }, compact with { MetadataType = ScalarType.Float32, ResidualType = ScalarType.Float32 }], 6, 4, 28, 1, 600, 128, 42);
        CheckBatch("batched: vidkv-1.5/1.58 + vidkv-1.25/1.58 Compact + Reference + kivi-2 (kinds and general-path fallbacks)", [compact, Seven("vidkv-1.25/1.58", CacheProfile.Compact), Seven("vidkv-1.5/1.58", CacheProfile.Reference), Seven("kivi-2", CacheProfile.Compact)], 9, 4, 28, 1, 500, 128, 43);
        CheckBatch("batched tensor cores: 70 sequences (two launches)", [compact], 70, 4, 28, 1, 100, 128, 44, forks: 5);
        CheckBatch("batched tensor cores: long (20000 tokens base)", [compact], 3, 4, 28, 1, 20000, 128, 45);

        // A batched decode step's appends in place (QuantizedKVCache.AppendDecodeStep: one launch writes every cache's new
        // token into its residual buffers) against Append per cache: the same content bit for bit through a flush, and the
        // batched attention and single calls reading the buffers (heads a buffer's capacity apart) equal bit for bit to reading
        // compact residuals.
        void CheckInPlaceAppend(string name, KVCacheOptions options, int sequences, int steps, int seed)
        {
            using var scope = NewDisposeScope();
            random.manual_seed(seed);
            const int kvHeads = 4, dim = 128;
            var alone = new List<QuantizedKVCache>();
            var inPlace = new List<QuantizedKVCache>();
            try
            {
                for (int i = 0; i < sequences; i++)
                {
                    int prompt = 300 + (i * 37) + (i % 3 == 2 ? 0 : i % 5);
                    var k = ((randn(1, kvHeads, prompt, dim) * 2) + 1).to(device);
                    var v = randn(1, kvHeads, prompt, dim).to(device);
                    foreach (var set in new[] { alone, inPlace })
                    {
                        var cache = new QuantizedKVCache(options);
                        cache.Prefill(k, v, randn(1, prompt).to(device));
                        set.Add(cache);
                    }
                }

                double content = 0;
                for (int step = 0; step < steps; step++)
                {
                    using var inner = NewDisposeScope();
                    var k = randn(sequences, kvHeads, 1, dim, dtype: ScalarType.BFloat16).to(device);
                    var v = randn(sequences, kvHeads, 1, dim, dtype: ScalarType.BFloat16).to(device);
                    for (int i = 0; i < sequences; i++)
                    {
                        alone[i].Append(k.narrow(0, i, 1), v.narrow(0, i, 1));
                    }

                    QuantizedKVCache.AppendDecodeStep(inPlace, k, v);
                }

                for (int i = 0; i < sequences; i++)
                {
                    using var inner = NewDisposeScope();
                    var (ka, va) = alone[i].GetKeysValues();
                    var (kb, vb) = inPlace[i].GetKeysValues();
                    content = Math.Max(content, Math.Max((ka.to(ScalarType.Float32) - kb.to(ScalarType.Float32)).abs().max().item<float>(), (va.to(ScalarType.Float32) - vb.to(ScalarType.Float32)).abs().max().item<float>()));
                    content = alone[i].Length == inPlace[i].Length && alone[i].FlushCount == inPlace[i].FlushCount ? content : double.PositiveInfinity;
                }

                var queries = (randn(sequences, 28, 1, dim) * 0.7).to(ScalarType.Float16).to(device);
                var fromCompact = QuantizedKVCache.AttendForDecode(alone, queries, causal: false, matchSingleCalls: true);
                var fromBuffers = QuantizedKVCache.AttendForDecode(inPlace, queries, causal: false, matchSingleCalls: true);
                string kernel = FusedAttention.LastCudaKernel;
                double attention = (fromCompact - fromBuffers).abs().max().item<float>();
                double reference = 0;
                for (int i = 0; i < sequences; i++)
                {
                    using var inner = NewDisposeScope();
                    reference = Math.Max(reference, (fromBuffers.narrow(0, i, 1) - inPlace[i].Attend(queries.narrow(0, i, 1), false)).abs().max().item<float>());
                }

                // The single-sequence call a decoder's step makes (float32 queries, as a float32 model's), over the same caches.
                double single = 0;
                string singleKernel = kernel;
                for (int i = 0; i < sequences; i++)
                {
                    using var inner = NewDisposeScope();
                    var q = queries.narrow(0, i, 1).to(ScalarType.Float32);
                    single = Math.Max(single, (alone[i].AttendForDecode(q, causal: false) - inPlace[i].AttendForDecode(q, causal: false)).abs().max().item<float>());
                    singleKernel = FusedAttention.LastCudaKernel;
                }

                string what = $"{name}, {sequences} sequences, {steps} steps ({inPlace.Min(c => c.Length)}..{inPlace.Max(c => c.Length)} tokens)";
                rows.Add(($"{what}: cached keys and values after in-place appends vs Append, bit for bit{(content == 0 ? string.Empty : $": NOT ({content:E1})")}", "append", content == 0 ? 0 : double.PositiveInfinity, "append launch"));
                rows.Add(($"{what}: attention over the residual buffers vs compact residuals, bit for bit{(attention == 0 ? string.Empty : $": NOT ({attention:E1})")}", "Auto batch", attention == 0 ? 0 : double.PositiveInfinity, kernel));
                rows.Add(($"{what}: attention over the residual buffers vs dequantize", "Auto batch", reference, kernel));
                rows.Add(($"{what}: single calls (AttendForDecode, float32 query) over the residual buffers vs compact residuals, bit for bit{(single == 0 ? string.Empty : $": NOT ({single:E1})")}", "Auto", single == 0 ? 0 : double.PositiveInfinity, singleKernel));
            }
            finally
            {
                alone.ForEach(c => c.Dispose());
                inPlace.ForEach(c => c.Dispose());
            }
        }

        CheckInPlaceAppend("in-place appends: vidkv-1.5/1.58 Compact", compact, 16, 150, 50);
        CheckInPlaceAppend("in-place appends: vidkv-1.5/1.58 Compact, bf16 residual", compact with { ResidualType = ScalarType.BFloat16 }, 5, 40, 51);
        CheckInPlaceAppend("in-place appends: vidkv-1.5/1.58 Reference (general kernels)", Seven("vidkv-1.5/1.58", CacheProfile.Reference), 5, 140, 52);
        CheckInPlaceAppend("in-place appends: fp16 (unquantized: Append per cache)", Seven("fp16", CacheProfile.Compact), 4, 30, 53);
        CheckInPlaceAppend("in-place appends: 70 sequences (two launches)", compact, 70, 3, 54);

        int failed = rows.Count(r => !(r.Error <= Tolerance));
        var sb = new StringBuilder();
        sb.AppendLine("# Fused attention on CUDA: equivalence with dequantize-then-attend").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- NVRTC: {FusedAttention.CudaDescription}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- {rows.Count} comparisons, tolerance {Tolerance:E0}: {rows.Count - failed} within, {failed} beyond").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Cases the single-launch tensor-core kernel ran: {rows.Count(r => r.Kernel.StartsWith("tensor", StringComparison.Ordinal))}");
        var batchRows = rows.Where(r => r.Path.EndsWith("batch", StringComparison.Ordinal)).ToList();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Batched launch (FusedAttention.AttendBatch) comparisons: {batchRows.Count}, {batchRows.Count(r => r.Error <= Tolerance)} within; launches with matchSingleCalls bit for bit equal to one call each: {batchRows.Count(r => r.Case.Contains("bit for bit", StringComparison.Ordinal) && r.Error == 0)} of {batchRows.Count(r => r.Case.Contains("bit for bit", StringComparison.Ordinal))}").AppendLine();
        sb.AppendLine("| case | path | kernel | max abs diff |");
        sb.AppendLine("|---|---|---|---:|");
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {r.Case} | {r.Path} | {r.Kernel} | {r.Error:E1}{(r.Error <= Tolerance ? string.Empty : " **FAIL**")} |");
        }

        string report = sb.ToString();
        Console.WriteLine(report);
        if (outPath is not null)
        {
            Machine.WriteReport(outPath, report);
        }

        return failed == 0 ? 0 : 1;
    }
}
