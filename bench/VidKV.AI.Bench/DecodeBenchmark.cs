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

    public long Seed { get; init; }

    public string Device { get; init; } = "cpu";

    public string? Out { get; init; }
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
    private readonly DecodeBenchmarkSettings _s;

    public DecodeBenchmark(DecodeBenchmarkSettings settings) => _s = settings;

    private sealed record Row(long Tokens, string Method, double MedianMs, double MinMs, long PeakBytes, long StoredBytes, double MaxDiff);

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
        var device = torch.device(_s.Device);
        long b = _s.Batch, h = _s.KvHeads, d = _s.HeadDim;

        // Keys with a few large-offset channels (post-RoPE outliers), values N(0, 1); made on the CPU from the seed.
        var offset = randn(d) * 0.5;
        offset.index_copy_(0, randperm(d).narrow(0, 0, 8), randn(8) * 10);
        var keys = ((randn(b, h, n, d) + offset).to(ScalarType.Float16)).to(device);
        var values = randn(b, h, n, d).to(ScalarType.Float16).to(device);
        var importance = randn(n).to(device);
        var query = randn(b, _s.QHeads, 1, d).to(ScalarType.Float16).to(device);

        using var cache = new QuantizedKVCache(KVCacheOptions.FromPreset(_s.Preset, _s.Profile));
        cache.Prefill(keys, values, importance);
        long stored = cache.Memory.TotalBytes;
        long fp16Bytes = (keys.NumberOfElements * keys.ElementSize) + (values.NumberOfElements * values.ElementSize);

        // GQA without copying the cache: the query heads of one KV head become rows of one attention problem.
        var groupedQuery = query.reshape(b, h, _s.QHeads / h, d);
        Tensor Fp16() => nn.functional.scaled_dot_product_attention(groupedQuery, keys, values);
        Tensor Dequantize() => cache.Attend(query);

        using var reference = Dequantize();
        var result = new List<Row>
        {
            Time(n, "FP16 cache, TorchSharp scaled_dot_product_attention", Fp16, fp16Bytes, null),
            Time(n, "dequantize, then attend (QuantizedKVCache.Attend)", Dequantize, stored, reference),
        };

        if (_s.Device == "cpu")
        {
            foreach (var path in new[] { FusedKernelPath.Avx512, FusedKernelPath.Avx2, FusedKernelPath.Portable }.Where(FusedAttention.IsSupported))
            {
                result.Add(Time(n, $"fused (AttendFused), {path}", () => cache.AttendFused(query, path: path), stored, reference));
            }
        }
        else
        {
            if (FusedAttention.IsSupported(FusedKernelPath.Cuda))
            {
                result.Add(Time(n, "fused (AttendFused), NVRTC CUDA kernel", () => cache.AttendFused(query, path: FusedKernelPath.Cuda), stored, reference, () => FusedAttention.LastCudaTemporaryBytes));
            }
            else
            {
                Console.WriteLine($"fused CUDA kernel not available: {FusedAttention.CudaDescription}");
            }

            result.Add(Time(n, "fused (AttendFused), chunked TorchSharp", () => cache.AttendFused(query, path: FusedKernelPath.Chunked), stored, reference));
        }

        return result;
    }

    /// <param name="deviceBytes">On CUDA, the bytes the last call's device tensors held, when the method reports them.</param>
    private Row Time(long n, string method, Func<Tensor> attend, long storedBytes, Tensor? reference, Func<long>? deviceBytes = null)
    {
        for (int i = 0; i < Warmup; i++)
        {
            using var inner = NewDisposeScope();
            _ = attend();
            Synchronize();
        }

        // Peak memory is measured on the CPU (resident memory); on CUDA the fused kernel path reports the bytes of the
        // device tensors it allocates (the caching allocator hides what other methods use).
        long peak = _s.Device == "cpu" ? PeakMemory.Measure(() =>
        {
            using var inner = NewDisposeScope();
            _ = attend();
        }) : deviceBytes?.Invoke() ?? -1;

        var times = new double[_s.Repeats];
        double diff = double.NaN;
        for (int i = 0; i < _s.Repeats; i++)
        {
            using var inner = NewDisposeScope();
            Synchronize();
            var watch = Stopwatch.StartNew();
            var output = attend();
            Synchronize();
            times[i] = watch.Elapsed.TotalMilliseconds;
            if (i == 0 && reference is not null)
            {
                diff = (output.to(ScalarType.Float32) - reference.to(ScalarType.Float32)).abs().max().item<float>();
            }
        }

        Array.Sort(times);
        return new Row(n, method, times[times.Length / 2], times[0], peak, storedBytes, diff);
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
        sb.AppendLine("| cached tokens | method | median ms | min ms | peak extra MiB | cache held MiB | peak extra / cache held | max abs diff to dequantize-then-attend |");
        sb.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            string peak = r.PeakBytes < 0 ? "-" : F(r.PeakBytes / 1048576.0, 2);
            string ratio = r.PeakBytes < 0 ? "-" : F(100.0 * r.PeakBytes / r.StoredBytes, 1) + " %";
            string diff = double.IsNaN(r.MaxDiff) ? "-" : r.MaxDiff.ToString("E1", CultureInfo.InvariantCulture);
            sb.Append(CultureInfo.InvariantCulture, $"| {r.Tokens} | {r.Method} | {F(r.MedianMs, 3)} | {F(r.MinMs, 3)} | {peak} | {F(r.StoredBytes / 1048576.0, 2)} | {ratio} | {diff} |").AppendLine();
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
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Geometry (one layer of LLaVA-OneVision-7B): batch {s.Batch}, {s.KvHeads} KV heads, {s.QHeads} query heads, head dim {s.HeadDim}, one decode query token; cache {s.Preset} {s.Profile}, prefilled with N tokens (N mod 32 = 0: all quantized, empty residual)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Timing: {Warmup} warm-up calls, then the median (and minimum) of {s.Repeats} calls{(s.Device == "cuda" ? ", the device synchronized before each clock read" : string.Empty)}; wall time {elapsed.TotalSeconds:F1} s");
        sb.AppendLine();
        sb.AppendLine("Methods: FP16 cache = keys and values held as fp16 tensors, the 7 query heads of each KV head attended as rows of one");
        sb.AppendLine("`scaled_dot_product_attention` call (no copy of the cache). Dequantize-then-attend = `QuantizedKVCache.Attend`: rebuilds the");
        sb.AppendLine("whole cache in fp16, then float32 attention with the KV heads repeated per query head. Fused = `QuantizedKVCache.AttendFused`.");
        sb.AppendLine("Peak extra = rise of the process's resident high-water mark during one call (Linux VmHWM, reset before the call;");
        sb.AppendLine("glibc set to map every allocation of 64 KiB or more separately) on the CPU; on CUDA, for the NVRTC kernel path only, the bytes");
        sb.AppendLine("of every device tensor the call allocates (`FusedAttention.LastCudaTemporaryBytes`: run states, query rows, output), since");
        sb.AppendLine("PyTorch's caching allocator hides the rise of device memory. Cache held = bytes the cache holds (`cache.Memory`)");
        sb.AppendLine("or, for FP16, the fp16 keys and values. The last column checks each output against dequantize-then-attend (which rounds the");
        sb.AppendLine("rebuilt cache to fp16, the fused path does not; the equivalence tests compare both in float32).");
        sb.AppendLine();
        sb.AppendLine(table);
        return sb.ToString();
    }
}
