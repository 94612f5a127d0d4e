using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>Settings of the decode-attention benchmark; the defaults are one layer of LLaVA-OneVision-7B.</summary>
internal sealed record DecodeBenchmarkSettings
{
    public IReadOnlyList<int> Tokens { get; init; } = new[] { 4096, 16384, 65536 };

    public int Batch { get; init; } = 1;

    public int KvHeads { get; init; } = 4;

    public int QHeads { get; init; } = 28;

    public int HeadDim { get; init; } = 128;

    public string Preset { get; init; } = "vidkv-1.5/1.58";

    public CacheProfile Profile { get; init; } = CacheProfile.Compact;

    public int Repeats { get; init; } = 10;

    /// <summary>Caches rotated on CUDA; 0: enough for 256 MiB of compressed cache (2 to 64).</summary>
    public int Copies { get; init; }

    public long Seed { get; init; }

    public string Device { get; init; } = "cpu";

    public string? Out { get; init; }

    /// <summary>The method names <c>--methods</c> accepts.</summary>
    public static IReadOnlyList<string> MethodNames { get; } = new[] { "fp16", "dequantize", "bf16", "fp32", "avx512", "avx2", "portable", "cuda", "chunked" };

    /// <summary>Methods to time (names of <see cref="MethodNames"/>); all by default.</summary>
    public IReadOnlySet<string> Methods { get; init; } = new HashSet<string>(MethodNames);

    /// <summary>Parses a comma-separated list of <see cref="MethodNames"/>.</summary>
    /// <exception cref="ArgumentException">A name is not one of <see cref="MethodNames"/>, or the list is empty.</exception>
    public static IReadOnlySet<string> ParseMethods(string value)
    {
        var names = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(m => m.ToLowerInvariant()).ToHashSet();
        var unknown = names.Where(m => !MethodNames.Contains(m)).ToList();
        if (names.Count == 0 || unknown.Count > 0)
        {
            throw new ArgumentException($"--methods got '{value}'; allowed: a comma-separated list of {string.Join(", ", MethodNames)}.");
        }

        return names;
    }
}

/// <summary>
/// Time and peak extra memory of one layer's decode attention (one query token) over a cache of N tokens, side by
/// side: an FP16 cache with TorchSharp's scaled_dot_product_attention, dequantize-then-attend
/// (<see cref="QuantizedKVCache.Attend"/>, what the released VidKV code does) and the fused path
/// (<see cref="QuantizedKVCache.AttendFused"/>), on the CPU for every kernel path this processor runs.
/// </summary>
internal sealed class DecodeBenchmark
{
    private const int Warmup = 3;
    private const int BackToBack = 20;
    private readonly DecodeBenchmarkSettings _s;

    public DecodeBenchmark(DecodeBenchmarkSettings settings) => _s = settings;

    private sealed record Row(long Tokens, string Method, double MedianMs, double MinMs, double BackToBackMs, double HostMs, int Copies, long PeakBytes, long StoredBytes, double MaxDiff);

    public int Run(string commandLine)
    {
        bool cuda = _s.Device == "cuda";
        if (cuda)
        {
            Machine.RequireCuda();
        }

        PeakMemory.Initialize();
        var rows = new List<Row>();
        var wall = Stopwatch.StartNew();
        foreach (int n in _s.Tokens)
        {
            rows.AddRange(Measure(n));
            Console.Error.WriteLine($"{n} tokens done, {wall.Elapsed.TotalSeconds:F1} s");
        }

        string table = Table(rows);
        Console.WriteLine(table);
        if (_s.Out is not null)
        {
            Machine.WriteReport(_s.Out, Report(commandLine, table, wall.Elapsed));
        }

        return 0;
    }

    private IEnumerable<Row> Measure(int n)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(_s.Seed + n);
        bool cuda = _s.Device == "cuda";
        var device = torch.device(_s.Device);
        long b = _s.Batch, h = _s.KvHeads, d = _s.HeadDim;

        // Keys with a few large-offset channels (post-RoPE outliers), values N(0, 1), made on the device from the seed.
        // On CUDA several caches are made and the calls rotate over them, so that each call reads device memory rather
        // than what the previous call left in the L2 (a decode step reads 28 layers' caches).
        var keys = new List<Tensor>();
        var values = new List<Tensor>();
        var queries = new List<Tensor>();
        var groupedQueries = new List<Tensor>();
        var caches = new List<QuantizedKVCache>();
        try
        {
            int copies = 1;
            for (int c = 0; c < copies; c++)
            {
                keys.Add(BenchRandom.OutlierKeys(b, h, n, d, device));
                values.Add(randn(new[] { b, h, n, d }, device: device).to(ScalarType.Float16));
                var importance = randn(new[] { (long)n }, device: device);
                queries.Add(randn(new[] { b, _s.QHeads, 1, d }, device: device).to(ScalarType.Float16));

                // GQA without copying the cache: the query heads of one KV head become rows of one attention problem.
                groupedQueries.Add(queries[c].reshape(b, h, _s.QHeads / h, d));
                var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(_s.Preset, _s.Profile));
                caches.Add(cache);
                cache.Prefill(keys[c], values[c], importance);
                if (c == 0)
                {
                    copies = !cuda ? 1 : _s.Copies > 0 ? _s.Copies : (int)Math.Clamp(Math.Ceiling(256.0 * 1048576 / cache.Memory.TotalBytes), 2, 64);
                }
            }

            long stored = caches[0].Memory.TotalBytes;
            long fp16Bytes = (keys[0].NumberOfElements * keys[0].ElementSize) + (values[0].NumberOfElements * values[0].ElementSize);
            Tensor Fp16(int i) => nn.functional.scaled_dot_product_attention(groupedQueries[i], keys[i], values[i]);
            Tensor Dequantize(int i) => caches[i].Attend(queries[i]);

            using var reference = Dequantize(0);
            var result = new List<Row>();
            if (cuda)
            {
                result.Add(Time(n, "timing floor: synchronize only, no work", _ => null, copies, 0, null));
            }

            if (_s.Methods.Contains("fp16"))
            {
                result.Add(Time(n, "FP16 cache, TorchSharp scaled_dot_product_attention, query heads folded per KV head (no copy of K/V)", Fp16, copies, fp16Bytes, null));
            }

            if (_s.Methods.Contains("dequantize"))
            {
                result.Add(Time(n, "dequantize, then attend (QuantizedKVCache.Attend)", Dequantize, copies, stored, reference));
            }

            if (!cuda)
            {
                // What a TorchSharp user has on the CPU: a bf16 or fp32 cache, the query heads of each KV head folded into
                // rows ([B, Hkv, G, D] @ K^T, no copy of the cache), softmax in float32.
                double scale = 1.0 / Math.Sqrt(d);
                foreach (var type in new[] { ScalarType.BFloat16, ScalarType.Float32 }.Where(t => _s.Methods.Contains(t == ScalarType.BFloat16 ? "bf16" : "fp32")))
                {
                    var (fk, fv, fq) = (keys[0].to(type), values[0].to(type), groupedQueries[0].to(type));
                    Tensor Folded(int i)
                    {
                        using var inner = NewDisposeScope();
                        using var scaleScalar = scale.ToScalar();
                        var p = matmul(fq, fk.transpose(2, 3)).to(ScalarType.Float32).mul_(scaleScalar).softmax(-1).to(type);
                        return matmul(p, fv).to(ScalarType.Float32).reshape(b, _s.QHeads, 1, d).MoveToOuterDisposeScope();
                    }

                    string name = type == ScalarType.BFloat16 ? "bf16" : "fp32";
                    result.Add(Time(n, $"{name} cache, TorchSharp matmul-softmax-matmul, query heads folded per KV head (no copy of K/V)", Folded, copies, fk.NumberOfElements * fk.ElementSize * 2, null));
                }

                foreach (var path in new[] { FusedKernelPath.Avx512, FusedKernelPath.Avx2, FusedKernelPath.Portable }.Where(p => FusedAttention.IsSupported(p) && _s.Methods.Contains(p.ToString().ToLowerInvariant())))
                {
                    result.Add(Time(n, $"fused (AttendFused), {path}", i => caches[i].AttendFused(queries[i], path: path), copies, stored, reference));
                }
            }
            else
            {
                bool nvrtc = _s.Methods.Contains("cuda");
                if (nvrtc && FusedAttention.IsSupported(FusedKernelPath.Cuda))
                {
                    foreach (string kernel in new[] { "auto", "mma-generic", "general" })
                    {
                        Environment.SetEnvironmentVariable(FusedAttention.CudaKernelVariable, kernel);
                        using (var probe = caches[0].AttendFused(queries[0], path: FusedKernelPath.Cuda))
                        {
                        }

                        result.Add(Time(n, $"fused (AttendFused), NVRTC CUDA: {FusedAttention.LastCudaKernel}", i => caches[i].AttendFused(queries[i], path: FusedKernelPath.Cuda), copies, stored, reference, () => FusedAttention.LastCudaTemporaryBytes));
                    }

                    Environment.SetEnvironmentVariable(FusedAttention.CudaKernelVariable, null);
                }
                else if (nvrtc)
                {
                    Console.WriteLine($"fused CUDA kernel not available: {FusedAttention.CudaDescription}");
                }

                if (_s.Methods.Contains("chunked"))
                {
                    result.Add(Time(n, "fused (AttendFused), chunked TorchSharp", i => caches[i].AttendFused(queries[i], path: FusedKernelPath.Chunked), copies, stored, reference));
                }
            }

            return result;
        }
        finally
        {
            foreach (var cache in caches)
            {
                cache.Dispose();
            }
        }
    }

    /// <param name="attend">One call on copy i of the inputs (null: no work, the timing floor).</param>
    /// <param name="deviceBytes">On CUDA, the bytes the last call's device tensors held, when the method reports them.</param>
    private Row Time(long n, string method, Func<int, Tensor?> attend, int copies, long storedBytes, Tensor? reference, Func<long>? deviceBytes = null)
    {
        // Warm up every copy (the CUDA kernels keep a workspace per cache, made on its first call).
        for (int i = 0; i < Math.Max(Warmup, copies); i++)
        {
            using var inner = NewDisposeScope();
            _ = attend(i % copies);
            Synchronize();
        }

        // Peak memory is measured on the CPU (resident memory); on CUDA the fused kernel path reports the bytes of the
        // device tensors it allocates or keeps for the cache (the caching allocator hides what other methods use).
        long peak = _s.Device == "cpu" ? PeakMemory.Measure(() =>
        {
            using var inner = NewDisposeScope();
            _ = attend(0);
        }) : deviceBytes?.Invoke() ?? -1;

        var times = new double[_s.Repeats];
        double diff = double.NaN;
        for (int i = 0; i < _s.Repeats; i++)
        {
            using var inner = NewDisposeScope();
            Synchronize();
            var watch = Stopwatch.StartNew();
            var output = attend(i % copies);
            Synchronize();
            times[i] = watch.Elapsed.TotalMilliseconds;
            if (i == 0 && reference is not null && output is not null)
            {
                diff = (output.to(ScalarType.Float32) - reference.to(ScalarType.Float32)).abs().max().item<float>();
            }
        }

        // Back to back (CUDA): BackToBack calls queued without waiting, then one synchronization; per call (not for methods
        // slower than 2 ms a call, whose launch overhead does not matter). Host: in the same batches, the time until the
        // last call returned (issued, before the synchronization), per call: the host's share of a call, launch included.
        Array.Sort(times);
        double backToBack = double.NaN, host = double.NaN;
        if (_s.Device == "cuda" && times[times.Length / 2] < 2)
        {
            var batches = new double[_s.Repeats];
            var issued = new double[_s.Repeats];
            for (int r = 0; r < _s.Repeats; r++)
            {
                using var inner = NewDisposeScope();
                Synchronize();
                var watch = Stopwatch.StartNew();
                for (int j = 0; j < BackToBack; j++)
                {
                    attend(((r * BackToBack) + j) % copies)?.Dispose();
                }

                issued[r] = watch.Elapsed.TotalMilliseconds / BackToBack;
                Synchronize();
                batches[r] = watch.Elapsed.TotalMilliseconds / BackToBack;
            }

            Array.Sort(batches);
            Array.Sort(issued);
            backToBack = batches[batches.Length / 2];
            host = issued[issued.Length / 2];
        }

        return new Row(n, method, times[times.Length / 2], times[0], backToBack, host, copies, peak, storedBytes, diff);
    }

    private void Synchronize()
    {
        if (_s.Device == "cuda")
        {
            cuda.synchronize();
        }
    }

    private static string Table(IReadOnlyList<Row> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| cached tokens | method | median ms | min ms | back to back, ms per call | host ms per call (issued) | copies rotated | peak extra MiB | cache held MiB | peak extra / cache held | max abs diff to dequantize-then-attend |");
        sb.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            string peak = r.PeakBytes < 0 ? "-" : F(r.PeakBytes / 1048576.0, 2);
            string ratio = r.PeakBytes < 0 || r.StoredBytes == 0 ? "-" : F(100.0 * r.PeakBytes / r.StoredBytes, 1) + " %";
            string b2b = double.IsNaN(r.BackToBackMs) ? "-" : F(r.BackToBackMs, 3);
            string host = double.IsNaN(r.HostMs) ? "-" : F(r.HostMs, 3);
            string diff = double.IsNaN(r.MaxDiff) ? "-" : r.MaxDiff.ToString("E1", CultureInfo.InvariantCulture);
            sb.Append(CultureInfo.InvariantCulture, $"| {r.Tokens} | {r.Method} | {F(r.MedianMs, 3)} | {F(r.MinMs, 3)} | {b2b} | {host} | {r.Copies} | {peak} | {F(r.StoredBytes / 1048576.0, 2)} | {ratio} | {diff} |").AppendLine();
        }

        return sb.ToString().TrimEnd();
    }

    private static string F(double x, int decimals) => x.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private string Report(string commandLine, string table, TimeSpan elapsed)
    {
        var s = _s;
        var sb = new StringBuilder();
        sb.AppendLine("# Decode attention benchmark").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`").AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Description}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Fused kernel paths that run here: {string.Join(", ", Enum.GetValues<FusedKernelPath>().Where(p => p != FusedKernelPath.Auto && FusedAttention.IsSupported(p)))} (Auto on the CPU = {FusedAttention.AutoPath}); NVRTC: {FusedAttention.CudaDescription}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- TorchSharp native layer: {TorchRuntime.Description}; {torch.get_num_threads()} intra-op threads; device {s.Device}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Geometry ({(s.KvHeads, s.QHeads, s.HeadDim) switch { (4, 28, 128) => "one layer of LLaVA-OneVision-7B", (2, 14, 64) => "one layer of LLaVA-OneVision-0.5B", _ => "one attention layer" }}): batch {s.Batch}, {s.KvHeads} KV heads, {s.QHeads} query heads, head dim {s.HeadDim}, one decode query token; cache {s.Preset} {s.Profile}, prefilled with N tokens (N mod 32 = 0: all quantized, empty residual)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Timing: {Warmup} warm-up calls (at least one per copy), then the median (and minimum) of {s.Repeats} calls{(s.Device == "cuda" ? ", the device synchronized before each clock read" : string.Empty)}; wall time {elapsed.TotalSeconds:F1} s");
        sb.AppendLine();
        sb.AppendLine("Methods: FP16 cache = keys and values held as fp16 tensors, the 7 query heads of each KV head attended as rows of one");
        sb.AppendLine("TorchSharp `scaled_dot_product_attention` call ([1, 4, 7, 128] against [1, 4, N, 128]: no copy of the cache; libtorch picks");
        sb.AppendLine("the backend). Dequantize-then-attend = `QuantizedKVCache.Attend`: rebuilds the whole cache, then float32 attention with the");
        sb.AppendLine("KV heads repeated per query head. Fused = `QuantizedKVCache.AttendFused`; on CUDA both NVRTC kernel sets run (the");
        sb.AppendLine("single-launch tensor-core kernel where it fits, and the general kernels, forced by `VIDKV_CUDA_ATTENTION=general`).");
        sb.AppendLine("Median ms = synchronize, read the clock, one call, synchronize (host work, launches and the device's work of one call).");
        sb.AppendLine("Back to back (CUDA) = 20 calls queued without waiting, then one synchronization, per call. Host (issued) = in the same");
        sb.AppendLine("batches, the time until the last call returned, before the synchronization, per call: the host's share of a call, launch");
        sb.AppendLine("included (a call whose median is well above both waits on the device's latency). Copies rotated = caches");
        sb.AppendLine("(different data) the calls cycle through, so that on CUDA each call reads device memory, not what the previous one left");
        sb.AppendLine("in the L2. Timing floor = the same clock reads around a synchronization with no work.");
        sb.AppendLine("Peak extra = rise of the process's resident high-water mark during one call (Linux VmHWM, reset before the call;");
        sb.AppendLine("glibc set to map every allocation of 64 KiB or more separately) on the CPU; on CUDA, for the NVRTC kernel paths only, the");
        sb.AppendLine("bytes of the device tensors the call allocates and, for the tensor-core kernel, the workspace it keeps per cache");
        sb.AppendLine("(`FusedAttention.LastCudaTemporaryBytes`), since PyTorch's caching allocator hides the rise of device memory. Cache held =");
        sb.AppendLine("bytes the cache holds (`cache.Memory`) or, for FP16, the fp16 keys and values. The last column checks each output against");
        sb.AppendLine("dequantize-then-attend on the first copy.");
        sb.AppendLine();
        sb.AppendLine(table);
        return sb.ToString();
    }
}
